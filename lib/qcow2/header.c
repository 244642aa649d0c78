/*
 * The qcow2 header and its extensions: parse with every field checked
 * against the format and QEMU's limits, and build for new images.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "format.h"

static bool aligned(uint64_t v, uint32_t cluster_bits)
{
	return (v & ((1ull << cluster_bits) - 1)) == 0;
}

/* Does [off, off+len) lie inside a file of `file_size` bytes? */
static bool inside(uint64_t off, uint64_t len, uint64_t file_size)
{
	return off <= file_size && len <= file_size - off;
}

static bool overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return alen && blen && a < b + blen && b < a + alen;
}

struct feature_name {
	uint8_t type, bit;
	const char *name;
};

static const struct feature_name feature_names[] = {
	{ 0, 0, "dirty bit" },
	{ 0, 1, "corrupt bit" },
	{ 0, 2, "external data file" },
	{ 0, 3, "compression type" },
	{ 0, 4, "extended L2 entries" },
	{ 1, 0, "lazy refcounts" },
	{ 2, 0, "bitmaps" },
	{ 2, 1, "raw external data" },
};

/* The name of an incompatible feature bit, from the image's own feature
 * table when it has one (so features newer than tern are named). */
static void feature_name(const uint8_t *buf, size_t table, size_t table_len, unsigned bit,
			 char *out, size_t out_len)
{
	for (size_t i = 0; table && i + 48 <= table_len; i += 48) {
		const uint8_t *e = buf + table + i;
		if (e[0] == 0 && e[1] == bit) {
			snprintf(out, out_len, "%.46s", (const char *)e + 2);
			return;
		}
	}
	for (size_t i = 0; i < sizeof(feature_names) / sizeof(feature_names[0]); i++)
		if (feature_names[i].type == 0 && feature_names[i].bit == bit) {
			snprintf(out, out_len, "%s", feature_names[i].name);
			return;
		}
	snprintf(out, out_len, "unknown feature bit %u", bit);
}

static int parse_extensions(const uint8_t *buf, size_t len, struct qcow2_header *h,
			    size_t *feature_table, size_t *feature_table_len,
			    struct tern_error *err)
{
	size_t off = h->header_length;
	size_t end = len;
	if (h->backing_file_offset && h->backing_file_offset < end)
		end = (size_t)h->backing_file_offset;
	while (off + 8 <= end) {
		uint32_t type = qcow2_be32(buf + off), elen = qcow2_be32(buf + off + 4);
		off += 8;
		if (type == QCOW2_EXT_END) {
			h->extensions_end = (uint32_t)off;
			return 0;
		}
		if (elen > end - off)
			return tern_errorf(err, -EINVAL,
					   "header extension 0x%08x of %u bytes runs past the header cluster",
					   type, elen);
		if (type == QCOW2_EXT_BACKING_FORMAT) {
			if (elen >= sizeof(h->backing_format) || memchr(buf + off, 0, elen))
				return tern_errorf(err, -EINVAL, "backing format name is invalid");
			memcpy(h->backing_format, buf + off, elen);
			h->backing_format[elen] = 0;
		} else if (type == QCOW2_EXT_FEATURE_TABLE) {
			*feature_table = off;
			*feature_table_len = elen;
		}
		off += ((size_t)elen + 7) & ~(size_t)7;
	}
	h->extensions_end = (uint32_t)(off < end ? off : end);
	return 0;
}

int qcow2_header_parse(const uint8_t *buf, size_t len, uint64_t file_size,
		       struct qcow2_header *h, struct tern_error *err)
{
	memset(h, 0, sizeof(*h));
	if (len < QCOW2_V2_HEADER_LEN)
		return tern_errorf(err, -EINVAL, "file too short for a qcow2 header");
	if (qcow2_be32(buf) != QCOW2_MAGIC)
		return tern_errorf(err, -EINVAL, "not a qcow2 image (bad magic)");
	h->version = qcow2_be32(buf + 4);
	if (h->version != 2 && h->version != 3)
		return tern_errorf(err, -ENOTSUP, "qcow2 version %u is not supported (2 and 3 are)",
				   h->version);
	h->backing_file_offset = qcow2_be64(buf + 8);
	h->backing_file_size = qcow2_be32(buf + 16);
	h->cluster_bits = qcow2_be32(buf + 20);
	h->size = qcow2_be64(buf + 24);
	h->crypt_method = qcow2_be32(buf + 32);
	h->l1_size = qcow2_be32(buf + 36);
	h->l1_table_offset = qcow2_be64(buf + 40);
	h->refcount_table_offset = qcow2_be64(buf + 48);
	h->refcount_table_clusters = qcow2_be32(buf + 56);
	h->nb_snapshots = qcow2_be32(buf + 60);
	h->snapshots_offset = qcow2_be64(buf + 64);

	if (h->cluster_bits < QCOW2_MIN_CLUSTER_BITS || h->cluster_bits > QCOW2_MAX_CLUSTER_BITS)
		return tern_errorf(err, -EINVAL, "cluster bits %u out of range %d..%d",
				   h->cluster_bits, QCOW2_MIN_CLUSTER_BITS, QCOW2_MAX_CLUSTER_BITS);
	uint64_t cs = 1ull << h->cluster_bits;
	if (len < cs && len < file_size)
		return tern_errorf(err, -EINVAL, "header cluster not fully read");

	if (h->version == 2) {
		h->refcount_order = 4;
		h->header_length = QCOW2_V2_HEADER_LEN;
	} else {
		if (len < QCOW2_V3_HEADER_LEN)
			return tern_errorf(err, -EINVAL, "file too short for a qcow2 v3 header");
		h->incompatible = qcow2_be64(buf + 72);
		h->compatible = qcow2_be64(buf + 80);
		h->autoclear = qcow2_be64(buf + 88);
		h->refcount_order = qcow2_be32(buf + 96);
		h->header_length = qcow2_be32(buf + 100);
		if (h->header_length < QCOW2_V3_HEADER_LEN || h->header_length > cs ||
		    h->header_length > len)
			return tern_errorf(err, -EINVAL, "header length %u out of range",
					   h->header_length);
		if (h->header_length > QCOW2_V3_HEADER_LEN)
			h->compression_type = buf[104];
	}
	if (h->crypt_method)
		return tern_errorf(err, -ENOTSUP, "encrypted qcow2 images are not supported");
	if (h->refcount_order > 6)
		return tern_errorf(err, -EINVAL, "refcount order %u out of range 0..6",
				   h->refcount_order);
	if (h->size > QCOW2_MAX_SIZE)
		return tern_errorf(err, -EINVAL, "virtual size %" PRIu64 " is too large", h->size);

	if (h->backing_file_offset) {
		size_t hlen = len < cs ? len : (size_t)cs; /* the name is in the header cluster */
		if (h->backing_file_size > QCOW2_MAX_BACKING_NAME ||
		    h->backing_file_offset > hlen || h->backing_file_size > hlen - h->backing_file_offset ||
		    h->backing_file_offset < h->header_length)
			return tern_errorf(err, -EINVAL, "backing file name out of range");
		memcpy(h->backing_file, buf + h->backing_file_offset, h->backing_file_size);
		h->backing_file[h->backing_file_size] = 0;
		if (strlen(h->backing_file) != h->backing_file_size || !h->backing_file_size)
			return tern_errorf(err, -EINVAL, "backing file name is invalid");
	}

	size_t ftable = 0, ftable_len = 0;
	int r = parse_extensions(buf, len < cs ? len : cs, h, &ftable, &ftable_len, err);
	if (r < 0)
		return r;

	uint64_t unknown = h->incompatible & ~QCOW2_INCOMPAT_KNOWN;
	if (unknown) {
		char name[64];
		unsigned bit = (unsigned)__builtin_ctzll(unknown);
		feature_name(buf, ftable, ftable_len, bit, name, sizeof(name));
		return tern_errorf(err, -ENOTSUP, "image uses an unsupported feature: %s", name);
	}
	bool zstd = h->incompatible & QCOW2_INCOMPAT_COMPRESSION;
	if (zstd != (h->compression_type == QCOW2_COMPRESSION_ZSTD) ||
	    h->compression_type > QCOW2_COMPRESSION_ZSTD)
		return tern_errorf(err, -EINVAL, "compression type %u does not match the feature bits",
				   h->compression_type);

	/* Tables: aligned, inside the file, clear of the header and of each other. */
	uint64_t l2_entries = cs / 8;
	uint64_t l1_needed = (h->size + cs * l2_entries - 1) / (cs * l2_entries);
	if (h->l1_size > QCOW2_MAX_L1_BYTES / 8)
		return tern_errorf(err, -EINVAL, "L1 table of %u entries is too large", h->l1_size);
	if (h->l1_size < l1_needed)
		return tern_errorf(err, -EINVAL, "L1 table of %u entries cannot map %" PRIu64 " bytes",
				   h->l1_size, h->size);
	uint64_t l1_bytes = (uint64_t)h->l1_size * 8;
	if (h->l1_size && (!aligned(h->l1_table_offset, h->cluster_bits) || !h->l1_table_offset ||
			   !inside(h->l1_table_offset, l1_bytes, file_size)))
		return tern_errorf(err, -EINVAL, "L1 table offset 0x%" PRIx64 " is invalid",
				   h->l1_table_offset);
	if (!h->refcount_table_clusters ||
	    h->refcount_table_clusters > (QCOW2_MAX_REFTABLE_BYTES >> h->cluster_bits) + 1)
		return tern_errorf(err, -EINVAL, "refcount table of %u clusters is invalid",
				   h->refcount_table_clusters);
	uint64_t rt_bytes = (uint64_t)h->refcount_table_clusters << h->cluster_bits;
	if (!aligned(h->refcount_table_offset, h->cluster_bits) || !h->refcount_table_offset ||
	    !inside(h->refcount_table_offset, rt_bytes, file_size))
		return tern_errorf(err, -EINVAL, "refcount table offset 0x%" PRIx64 " is invalid",
				   h->refcount_table_offset);
	if (h->nb_snapshots > QCOW2_MAX_SNAPSHOTS)
		return tern_errorf(err, -EINVAL, "%u snapshots is more than qcow2 allows",
				   h->nb_snapshots);
	if (h->nb_snapshots && (!aligned(h->snapshots_offset, h->cluster_bits) ||
				!h->snapshots_offset || h->snapshots_offset >= file_size))
		return tern_errorf(err, -EINVAL, "snapshot table offset 0x%" PRIx64 " is invalid",
				   h->snapshots_offset);
	if (overlap(h->l1_table_offset, l1_bytes, h->refcount_table_offset, rt_bytes) ||
	    overlap(0, cs, h->l1_table_offset, l1_bytes) ||
	    overlap(h->snapshots_offset, h->nb_snapshots ? cs : 0, h->l1_table_offset, l1_bytes) ||
	    overlap(h->snapshots_offset, h->nb_snapshots ? cs : 0, h->refcount_table_offset,
		    rt_bytes))
		return tern_errorf(err, -EINVAL, "metadata tables overlap");
	return 0;
}

static size_t put_extension(uint8_t *buf, size_t off, uint32_t type, const void *data,
			    uint32_t len)
{
	qcow2_put32(buf + off, type);
	qcow2_put32(buf + off + 4, len);
	memcpy(buf + off + 8, data, len);
	return off + 8 + ((len + 7u) & ~7u);
}

int qcow2_header_build(const struct qcow2_header *h, uint8_t *buf, size_t cluster_size,
		       struct tern_error *err)
{
	qcow2_put32(buf, QCOW2_MAGIC);
	qcow2_put32(buf + 4, 3);
	qcow2_put32(buf + 20, h->cluster_bits);
	qcow2_put64(buf + 24, h->size);
	qcow2_put32(buf + 36, h->l1_size);
	qcow2_put64(buf + 40, h->l1_table_offset);
	qcow2_put64(buf + 48, h->refcount_table_offset);
	qcow2_put32(buf + 56, h->refcount_table_clusters);
	qcow2_put64(buf + 72, h->incompatible);
	qcow2_put64(buf + 80, h->compatible);
	qcow2_put64(buf + 88, h->autoclear);
	qcow2_put32(buf + 96, h->refcount_order);
	qcow2_put32(buf + 100, QCOW2_HEADER_LEN);
	buf[104] = h->compression_type;

	size_t backing_len = strlen(h->backing_file), fmt_len = strlen(h->backing_format);
	size_t nfeat = sizeof(feature_names) / sizeof(feature_names[0]);
	size_t need_min = QCOW2_HEADER_LEN + (fmt_len ? 8 + ((fmt_len + 7) & ~7u) : 0) + 8 +
			  backing_len;
	if (backing_len > QCOW2_MAX_BACKING_NAME || need_min > cluster_size)
		return tern_errorf(err, -EINVAL, "backing file name does not fit in the header");
	size_t off = QCOW2_HEADER_LEN;
	if (fmt_len)
		off = put_extension(buf, off, QCOW2_EXT_BACKING_FORMAT, h->backing_format,
				    (uint32_t)fmt_len);
	/* The feature name table, as qemu-img writes it, when it fits. */
	if (need_min + 8 + nfeat * 48 <= cluster_size) {
		uint8_t table[sizeof(feature_names) / sizeof(feature_names[0]) * 48] = { 0 };
		for (size_t i = 0; i < nfeat; i++) {
			table[i * 48] = feature_names[i].type;
			table[i * 48 + 1] = feature_names[i].bit;
			memcpy(table + i * 48 + 2, feature_names[i].name,
			       strlen(feature_names[i].name));
		}
		off = put_extension(buf, off, QCOW2_EXT_FEATURE_TABLE, table, (uint32_t)sizeof(table));
	}
	qcow2_put32(buf + off, QCOW2_EXT_END);
	qcow2_put32(buf + off + 4, 0);
	off += 8;
	if (backing_len) {
		memcpy(buf + off, h->backing_file, backing_len);
		qcow2_put64(buf + 8, off);
		qcow2_put32(buf + 16, (uint32_t)backing_len);
	}
	return 0;
}
