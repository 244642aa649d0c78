/*
 * Baseline: QEMU's CPR fd registry after seed 000, a GLib GHashTable keyed
 * by (name, id) with g_str_hash mixed with the id, re-expressed here.
 * Linked into bench/fdstore only (it alone needs GLib).
 */
#ifndef BASELINE_CPR_FD_GHASH_H
#define BASELINE_CPR_FD_GHASH_H

struct cpr_fd_ghash;

struct cpr_fd_ghash *cpr_fd_ghash_new(void);
int cpr_fd_ghash_save(struct cpr_fd_ghash *h, const char *name, int id, int fd);
int cpr_fd_ghash_find(const struct cpr_fd_ghash *h, const char *name, int id);
void cpr_fd_ghash_free(struct cpr_fd_ghash *h);

#endif
