/*
 * The snapshot table, in QEMU's format: per snapshot a fixed part, extra
 * data (large VM state size, disk size, icount), the id and the name, each
 * entry padded to 8 bytes.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "image.h"

#define SNAPSHOT_FIXED 40
#define SNAPSHOT_EXTRA_KNOWN 24

void qcow2_snapshots_free(struct qcow2_snapshot *s, uint32_t count)
{
	for (uint32_t i = 0; s && i < count; i++) {
		free(s[i].id);
		free(s[i].name);
	}
	free(s);
}

static char *copy_string(const uint8_t *p, size_t len)
{
	char *s = malloc(len + 1);
	if (s) {
		memcpy(s, p, len);
		s[len] = 0;
	}
	return s;
}

int qcow2_snapshots_parse(const uint8_t *buf, size_t len, uint32_t count,
			  const struct qcow2_header *h, uint64_t file_size,
			  struct qcow2_snapshot **out, size_t *table_bytes, struct tern_error *err)
{
	struct qcow2_snapshot *s = calloc(count ? count : 1, sizeof(*s));
	if (!s)
		return tern_errorf(err, -ENOMEM, "out of memory for %u snapshots", count);
	size_t off = 0;
	uint64_t cmask = (1ull << h->cluster_bits) - 1;
	int r = 0;
	for (uint32_t i = 0; i < count; i++) {
		struct qcow2_snapshot *sn = &s[i];
		if (len - off < SNAPSHOT_FIXED) {
			r = tern_errorf(err, -ENODATA, "snapshot table is truncated at entry %u", i);
			break;
		}
		const uint8_t *p = buf + off;
		sn->l1_table_offset = qcow2_be64(p);
		sn->l1_size = qcow2_be32(p + 8);
		uint16_t id_len = qcow2_be16(p + 12), name_len = qcow2_be16(p + 14);
		sn->date_sec = qcow2_be32(p + 16);
		sn->date_nsec = qcow2_be32(p + 20);
		sn->vm_clock_nsec = qcow2_be64(p + 24);
		sn->vm_state_size = qcow2_be32(p + 32);
		sn->extra_size = qcow2_be32(p + 36);
		if (sn->extra_size > QCOW2_MAX_SNAPSHOT_EXTRA) {
			r = tern_errorf(err, -EINVAL, "snapshot %u has %u bytes of extra data (max %d)",
					i, sn->extra_size, QCOW2_MAX_SNAPSHOT_EXTRA);
			break;
		}
		size_t need = SNAPSHOT_FIXED + (size_t)sn->extra_size + id_len + name_len;
		need = (need + 7) & ~(size_t)7;
		if (off + need > QCOW2_MAX_SNAPSHOT_TABLE_BYTES) {
			r = tern_errorf(err, -EINVAL, "snapshot table is larger than %u MiB",
					QCOW2_MAX_SNAPSHOT_TABLE_BYTES >> 20);
			break;
		}
		if (len - off < need) {
			r = tern_errorf(err, -ENODATA, "snapshot table is truncated at entry %u", i);
			break;
		}
		memcpy(sn->extra, p + SNAPSHOT_FIXED, sn->extra_size);
		sn->vm_state_size_large = sn->extra_size >= 8 ? qcow2_be64(sn->extra) : sn->vm_state_size;
		sn->disk_size = sn->extra_size >= 16 ? qcow2_be64(sn->extra + 8) : h->size;
		sn->icount = sn->extra_size >= 24 ? qcow2_be64(sn->extra + 16) : UINT64_MAX;
		const uint8_t *strings = p + SNAPSHOT_FIXED + sn->extra_size;
		sn->id = copy_string(strings, id_len);
		sn->name = copy_string(strings + id_len, name_len);
		if (!sn->id || !sn->name) {
			r = tern_errorf(err, -ENOMEM, "out of memory");
			break;
		}
		if (strlen(sn->id) != id_len || strlen(sn->name) != name_len) {
			r = tern_errorf(err, -EINVAL, "snapshot %u has a NUL in its id or name", i);
			break;
		}
		uint64_t l1_bytes = (uint64_t)sn->l1_size * 8;
		if (sn->l1_size > QCOW2_MAX_L1_BYTES / 8 || (sn->l1_table_offset & cmask) ||
		    (sn->l1_size && (sn->l1_table_offset < (1ull << h->cluster_bits) ||
				     sn->l1_table_offset > file_size ||
				     l1_bytes > file_size - sn->l1_table_offset))) {
			r = tern_errorf(err, -EINVAL, "snapshot %u has an invalid L1 table", i);
			break;
		}
		off += need;
	}
	if (r < 0) {
		qcow2_snapshots_free(s, count);
		return r;
	}
	*out = s;
	*table_bytes = off;
	return 0;
}

static uint32_t extra_size(const struct qcow2_snapshot *sn)
{
	return sn->extra_size > SNAPSHOT_EXTRA_KNOWN ? sn->extra_size : SNAPSHOT_EXTRA_KNOWN;
}

size_t qcow2_snapshots_size(const struct qcow2_snapshot *s, uint32_t count)
{
	size_t total = 0;
	for (uint32_t i = 0; i < count; i++) {
		size_t n = SNAPSHOT_FIXED + extra_size(&s[i]) + strlen(s[i].id) + strlen(s[i].name);
		total += (n + 7) & ~(size_t)7;
	}
	return total;
}

void qcow2_snapshots_build(const struct qcow2_snapshot *s, uint32_t count, uint8_t *buf)
{
	size_t off = 0;
	for (uint32_t i = 0; i < count; i++) {
		const struct qcow2_snapshot *sn = &s[i];
		uint8_t *p = buf + off;
		size_t id_len = strlen(sn->id), name_len = strlen(sn->name);
		uint32_t extra = extra_size(sn);
		size_t n = SNAPSHOT_FIXED + extra + id_len + name_len;
		memset(p, 0, (n + 7) & ~(size_t)7);
		qcow2_put64(p, sn->l1_table_offset);
		qcow2_put32(p + 8, sn->l1_size);
		qcow2_put16(p + 12, (uint16_t)id_len);
		qcow2_put16(p + 14, (uint16_t)name_len);
		qcow2_put32(p + 16, sn->date_sec);
		qcow2_put32(p + 20, sn->date_nsec);
		qcow2_put64(p + 24, sn->vm_clock_nsec);
		qcow2_put32(p + 32, sn->vm_state_size);
		qcow2_put32(p + 36, extra);
		memcpy(p + SNAPSHOT_FIXED, sn->extra, sn->extra_size);
		qcow2_put64(p + SNAPSHOT_FIXED, sn->vm_state_size_large);
		qcow2_put64(p + SNAPSHOT_FIXED + 8, sn->disk_size);
		qcow2_put64(p + SNAPSHOT_FIXED + 16, sn->icount);
		memcpy(p + SNAPSHOT_FIXED + extra, sn->id, id_len);
		memcpy(p + SNAPSHOT_FIXED + extra + id_len, sn->name, name_len);
		off += (n + 7) & ~(size_t)7;
	}
}
