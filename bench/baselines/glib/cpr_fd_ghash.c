/* Baseline: the GHashTable fd registry; see cpr_fd_ghash.h. */
#include "cpr_fd_ghash.h"

#include <glib.h>

struct fd_key {
	char *name;
	int id;
};

struct fd_val {
	int fd;
};

static guint key_hash(gconstpointer p)
{
	const struct fd_key *k = p;
	return g_str_hash(k->name) ^ (guint)k->id;
}

static gboolean key_equal(gconstpointer a, gconstpointer b)
{
	const struct fd_key *x = a, *y = b;
	return x->id == y->id && g_str_equal(x->name, y->name);
}

static void key_free(gpointer p)
{
	struct fd_key *k = p;
	g_free(k->name);
	g_free(k);
}

struct cpr_fd_ghash *cpr_fd_ghash_new(void)
{
	return (struct cpr_fd_ghash *)g_hash_table_new_full(key_hash, key_equal, key_free, g_free);
}

int cpr_fd_ghash_save(struct cpr_fd_ghash *h, const char *name, int id, int fd)
{
	struct fd_key *k = g_new(struct fd_key, 1);
	struct fd_val *v = g_new(struct fd_val, 1);
	k->name = g_strdup(name);
	k->id = id;
	v->fd = fd;
	g_hash_table_insert((GHashTable *)h, k, v);
	return 0;
}

int cpr_fd_ghash_find(const struct cpr_fd_ghash *h, const char *name, int id)
{
	struct fd_key k = { .name = (char *)name, .id = id };
	const struct fd_val *v = g_hash_table_lookup((GHashTable *)h, &k);
	return v != NULL ? v->fd : -1;
}

void cpr_fd_ghash_free(struct cpr_fd_ghash *h)
{
	g_hash_table_destroy((GHashTable *)h);
}
