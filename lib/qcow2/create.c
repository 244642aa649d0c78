/*
 * Creating an image: header, refcount table and blocks, L1 table and, with
 * metadata preallocation, every L2 table and data cluster, laid out in that
 * order so the tables are contiguous and later whole-image passes read
 * them sequentially.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "image.h"

#define CREATE_BATCH (8u << 20)

struct layout {
	unsigned order;
	uint64_t cs, l2_entries, rpb;
	uint64_t reftable_clusters, nblocks, l1_entries, l1_clusters, l2_tables, data_clusters;
	uint64_t total; /* clusters */
	uint64_t reftable_at, blocks_at, l1_at, l2_at, data_at; /* cluster indexes */
};

static void plan(struct layout *l, uint64_t size, unsigned cluster_bits, unsigned order,
		 bool prealloc)
{
	l->order = order;
	l->cs = 1ull << cluster_bits;
	l->l2_entries = l->cs / 8;
	l->rpb = (l->cs * 8) >> order;
	uint64_t span = l->cs * l->l2_entries;
	l->l1_entries = (size + span - 1) / span;
	if (!l->l1_entries)
		l->l1_entries = 1;
	l->l1_clusters = (l->l1_entries * 8 + l->cs - 1) / l->cs;
	l->data_clusters = prealloc ? (size + l->cs - 1) / l->cs : 0;
	l->l2_tables = prealloc ? (l->data_clusters + l->l2_entries - 1) / l->l2_entries : 0;
	l->nblocks = 1;
	l->reftable_clusters = 1;
	for (;;) {
		l->total = 1 + l->reftable_clusters + l->nblocks + l->l1_clusters + l->l2_tables +
			   l->data_clusters;
		uint64_t nb = (l->total + l->rpb - 1) / l->rpb;
		uint64_t rt = (nb * 8 + l->cs - 1) / l->cs;
		if (nb <= l->nblocks && rt <= l->reftable_clusters)
			break;
		l->nblocks = nb > l->nblocks ? nb : l->nblocks;
		l->reftable_clusters = rt > l->reftable_clusters ? rt : l->reftable_clusters;
	}
	l->reftable_at = 1;
	l->blocks_at = l->reftable_at + l->reftable_clusters;
	l->l1_at = l->blocks_at + l->nblocks;
	l->l2_at = l->l1_at + l->l1_clusters;
	l->data_at = l->l2_at + l->l2_tables;
}

/* Write `clusters` clusters from `at`, each filled by fill(index). */
typedef void (*fill_fn)(const struct layout *l, uint64_t index, uint8_t *cluster);

static int write_clusters(int fd, const struct layout *l, uint64_t at, uint64_t clusters,
			  fill_fn fill, struct tern_error *err)
{
	uint64_t per = CREATE_BATCH / l->cs ? CREATE_BATCH / l->cs : 1;
	uint8_t *buf = malloc(per * l->cs);
	if (!buf)
		return tern_errorf(err, -ENOMEM, "out of memory");
	int r = 0;
	for (uint64_t i = 0; i < clusters && r == 0; i += per) {
		uint64_t n = clusters - i < per ? clusters - i : per;
		memset(buf, 0, n * l->cs);
		for (uint64_t k = 0; k < n; k++)
			fill(l, i + k, buf + k * l->cs);
		size_t len = n * l->cs, done = 0;
		while (done < len) {
			ssize_t w = pwrite(fd, buf + done, len - done, (off_t)((at + i) * l->cs + done));
			if (w < 0) {
				r = tern_errorf(err, -errno, "writing the image: %s", strerror(errno));
				break;
			}
			done += (size_t)w;
		}
	}
	free(buf);
	return r;
}

static void fill_reftable(const struct layout *l, uint64_t index, uint8_t *c)
{
	for (uint64_t j = 0; j < l->cs / 8; j++) {
		uint64_t b = index * (l->cs / 8) + j;
		if (b < l->nblocks)
			qcow2_put64(c + j * 8, (l->blocks_at + b) * l->cs);
	}
}

static void fill_block(const struct layout *l, uint64_t index, uint8_t *c)
{
	for (uint64_t j = 0; j < l->rpb; j++)
		if (index * l->rpb + j < l->total)
			qcow2_rc_set(c, j, l->order, 1);
}

static void fill_l1(const struct layout *l, uint64_t index, uint8_t *c)
{
	for (uint64_t j = 0; j < l->cs / 8; j++) {
		uint64_t t = index * (l->cs / 8) + j;
		if (t < l->l2_tables)
			qcow2_put64(c + j * 8, ((l->l2_at + t) * l->cs) | QCOW2_OFLAG_COPIED);
	}
}

static void fill_l2(const struct layout *l, uint64_t index, uint8_t *c)
{
	for (uint64_t j = 0; j < l->l2_entries; j++) {
		uint64_t d = index * l->l2_entries + j;
		if (d < l->data_clusters)
			qcow2_put64(c + j * 8, ((l->data_at + d) * l->cs) | QCOW2_OFLAG_COPIED);
	}
}

int tern_qcow2_create(const char *path, const struct tern_qcow2_create_opts *o,
		      struct tern_error *err)
{
	unsigned cluster_bits = o->cluster_bits ? o->cluster_bits : 16;
	unsigned refcount_bits = o->refcount_bits ? o->refcount_bits : 16;
	if (cluster_bits < QCOW2_MIN_CLUSTER_BITS || cluster_bits > QCOW2_MAX_CLUSTER_BITS)
		return tern_errorf(err, -EINVAL, "cluster size must be a power of two from 512 B to 2 MiB");
	if (refcount_bits > 64 || (refcount_bits & (refcount_bits - 1)))
		return tern_errorf(err, -EINVAL, "refcount bits must be a power of two up to 64");
	uint64_t size = (o->size + 511) & ~511ull;
	if (o->size > QCOW2_MAX_SIZE)
		return tern_errorf(err, -EINVAL, "size %" PRIu64 " is larger than qcow2 allows", o->size);
	if (o->preallocate_metadata && o->backing_file)
		return tern_errorf(err, -EINVAL, "metadata preallocation and a backing file exclude each other");
	struct qcow2_header h = { 0 };
	h.cluster_bits = cluster_bits;
	h.size = size;
	h.refcount_order = (uint32_t)__builtin_ctz(refcount_bits);
	h.compatible = o->lazy_refcounts ? QCOW2_COMPAT_LAZY_REFCOUNTS : 0;
	if (o->zstd) {
		h.compression_type = QCOW2_COMPRESSION_ZSTD;
		h.incompatible |= QCOW2_INCOMPAT_COMPRESSION;
	}
	if (o->backing_file)
		snprintf(h.backing_file, sizeof(h.backing_file), "%s", o->backing_file);
	if (o->backing_format)
		snprintf(h.backing_format, sizeof(h.backing_format), "%s", o->backing_format);

	struct layout l;
	plan(&l, size, cluster_bits, h.refcount_order, o->preallocate_metadata);
	if (l.l1_entries * 8 > QCOW2_MAX_L1_BYTES)
		return tern_errorf(err, -EINVAL, "size needs an L1 table over %u MiB; use larger clusters",
				   QCOW2_MAX_L1_BYTES >> 20);
	if (l.reftable_clusters * l.cs > QCOW2_MAX_REFTABLE_BYTES)
		return tern_errorf(err, -EINVAL, "size needs a refcount table over %u MiB",
				   QCOW2_MAX_REFTABLE_BYTES >> 20);
	h.l1_size = (uint32_t)l.l1_entries;
	h.l1_table_offset = l.l1_at * l.cs;
	h.refcount_table_offset = l.reftable_at * l.cs;
	h.refcount_table_clusters = (uint32_t)l.reftable_clusters;

	uint8_t *hdr = calloc(1, l.cs);
	if (!hdr)
		return tern_errorf(err, -ENOMEM, "out of memory");
	int r = qcow2_header_build(&h, hdr, l.cs, err);
	if (r < 0) {
		free(hdr);
		return r;
	}
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		free(hdr);
		return tern_errorf(err, -errno, "creating %s: %s", path, strerror(errno));
	}
	ssize_t w = pwrite(fd, hdr, l.cs, 0);
	free(hdr);
	if (w != (ssize_t)l.cs)
		r = tern_errorf(err, -EIO, "writing the header of %s", path);
	if (r == 0)
		r = write_clusters(fd, &l, l.reftable_at, l.reftable_clusters, fill_reftable, err);
	if (r == 0)
		r = write_clusters(fd, &l, l.blocks_at, l.nblocks, fill_block, err);
	if (r == 0)
		r = write_clusters(fd, &l, l.l1_at, l.l1_clusters, fill_l1, err);
	if (r == 0)
		r = write_clusters(fd, &l, l.l2_at, l.l2_tables, fill_l2, err);
	if (r == 0 && ftruncate(fd, (off_t)(l.total * l.cs)) < 0)
		r = tern_errorf(err, -errno, "sizing %s: %s", path, strerror(errno));
	if (r == 0 && fsync(fd) < 0)
		r = tern_errorf(err, -errno, "syncing %s: %s", path, strerror(errno));
	close(fd);
	if (r < 0)
		unlink(path);
	return r;
}
