/*
 * The qcow2 on-disk format: field offsets, flags and limits, and the parsed
 * header.  Everything here follows QEMU's docs/interop/qcow2.txt; all
 * multi-byte fields on disk are big-endian.
 */
#ifndef TERN_QCOW2_FORMAT_H
#define TERN_QCOW2_FORMAT_H

#include <endian.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tern/error.h"

#define QCOW2_MAGIC 0x514649fbu /* "QFI\xfb" */
#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21
#define QCOW2_V2_HEADER_LEN 72
#define QCOW2_V3_HEADER_LEN 104
#define QCOW2_HEADER_LEN 112 /* v3 with the compression type, padded to 8 */

/* QEMU's limits: anything larger is refused as hostile. */
#define QCOW2_MAX_L1_BYTES (32u << 20)
#define QCOW2_MAX_REFTABLE_BYTES (8u << 20)
#define QCOW2_MAX_SNAPSHOTS 65536
#define QCOW2_MAX_SNAPSHOT_TABLE_BYTES (64u << 20)
#define QCOW2_MAX_BACKING_NAME 1023
#define QCOW2_MAX_SNAPSHOT_EXTRA 1024
#define QCOW2_MAX_SIZE (1ull << 56) /* 64 PiB: host offsets hold 56 bits */

/* Feature bits. */
#define QCOW2_INCOMPAT_DIRTY (1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT (1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE (1ull << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ull << 3)
#define QCOW2_INCOMPAT_EXTL2 (1ull << 4)
#define QCOW2_INCOMPAT_KNOWN (QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT | \
			      QCOW2_INCOMPAT_COMPRESSION)
#define QCOW2_COMPAT_LAZY_REFCOUNTS (1ull << 0)
#define QCOW2_AUTOCLEAR_KNOWN 0ull /* bitmaps and raw data file: not kept up */

#define QCOW2_COMPRESSION_DEFLATE 0
#define QCOW2_COMPRESSION_ZSTD 1

/* Header extensions. */
#define QCOW2_EXT_END 0u
#define QCOW2_EXT_BACKING_FORMAT 0xe2792acau
#define QCOW2_EXT_FEATURE_TABLE 0x6803f857u

/* Table entries. */
#define QCOW2_OFLAG_COPIED (1ull << 63)
#define QCOW2_OFLAG_COMPRESSED (1ull << 62)
#define QCOW2_OFLAG_ZERO 1ull
#define QCOW2_OFFSET_MASK 0x00fffffffffffe00ull
#define QCOW2_L1_RESERVED 0x7f000000000001ffull
#define QCOW2_L2_RESERVED 0x3f000000000001feull
#define QCOW2_REFTABLE_RESERVED 0x1ffull

/* Byte offsets of the header fields tern rewrites. */
#define QCOW2_HDR_L1_SIZE 36
#define QCOW2_HDR_L1_OFFSET 40
#define QCOW2_HDR_REFTABLE_OFFSET 48
#define QCOW2_HDR_REFTABLE_CLUSTERS 56
#define QCOW2_HDR_NB_SNAPSHOTS 60
#define QCOW2_HDR_SNAPSHOTS_OFFSET 64
#define QCOW2_HDR_INCOMPAT 72
#define QCOW2_HDR_AUTOCLEAR 88

struct qcow2_header {
	uint32_t version;
	uint64_t backing_file_offset;
	uint32_t backing_file_size;
	uint32_t cluster_bits;
	uint64_t size;
	uint32_t crypt_method;
	uint32_t l1_size;
	uint64_t l1_table_offset;
	uint64_t refcount_table_offset;
	uint32_t refcount_table_clusters;
	uint32_t nb_snapshots;
	uint64_t snapshots_offset;
	uint64_t incompatible;
	uint64_t compatible;
	uint64_t autoclear;
	uint32_t refcount_order;
	uint32_t header_length;
	uint8_t compression_type;
	char backing_file[QCOW2_MAX_BACKING_NAME + 1];
	char backing_format[64];
	/* Extension bytes after the header, kept as they are on disk. */
	uint32_t extensions_end; /* offset just past the end-of-extensions marker */
};

static inline uint16_t qcow2_be16(const void *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return be16toh(v);
}
static inline uint32_t qcow2_be32(const void *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return be32toh(v);
}
static inline uint64_t qcow2_be64(const void *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return be64toh(v);
}
static inline void qcow2_put16(void *p, uint16_t v)
{
	v = htobe16(v);
	memcpy(p, &v, 2);
}
static inline void qcow2_put32(void *p, uint32_t v)
{
	v = htobe32(v);
	memcpy(p, &v, 4);
}
static inline void qcow2_put64(void *p, uint64_t v)
{
	v = htobe64(v);
	memcpy(p, &v, 8);
}

/* Parse and validate the first cluster of an image (`len` bytes of it are
 * in `buf`; `file_size` bounds every offset).  Checks every field against
 * the format and against QEMU's limits; refuses features tern cannot honour. */
int qcow2_header_parse(const uint8_t *buf, size_t len, uint64_t file_size,
		       struct qcow2_header *h, struct tern_error *err);

/* Serialize a header with its extensions (backing format, feature names)
 * and backing file name into a zeroed cluster `buf` of `cluster_size`. */
int qcow2_header_build(const struct qcow2_header *h, uint8_t *buf, size_t cluster_size,
		       struct tern_error *err);

/* A refcount of width 2^order bits at `index` in a refcount block. */
static inline uint64_t qcow2_rc_get(const uint8_t *block, uint64_t index, unsigned order)
{
	switch (order) {
	case 0: return (block[index / 8] >> (index % 8)) & 1;
	case 1: return (block[index / 4] >> (2 * (index % 4))) & 3;
	case 2: return (block[index / 2] >> (4 * (index % 2))) & 15;
	case 3: return block[index];
	case 4: return qcow2_be16(block + 2 * index);
	case 5: return qcow2_be32(block + 4 * index);
	default: return qcow2_be64(block + 8 * index);
	}
}

static inline void qcow2_rc_set(uint8_t *block, uint64_t index, unsigned order, uint64_t v)
{
	unsigned shift;
	switch (order) {
	case 0: case 1: case 2: {
		unsigned bits = 1u << order, per = 8 / bits;
		shift = bits * (unsigned)(index % per);
		uint8_t mask = (uint8_t)(((1u << bits) - 1) << shift);
		block[index / per] = (uint8_t)((block[index / per] & ~mask) | ((v << shift) & mask));
		return;
	}
	case 3: block[index] = (uint8_t)v; return;
	case 4: qcow2_put16(block + 2 * index, (uint16_t)v); return;
	case 5: qcow2_put32(block + 4 * index, (uint32_t)v); return;
	default: qcow2_put64(block + 8 * index, v); return;
	}
}

static inline uint64_t qcow2_rc_max(unsigned order)
{
	return order == 6 ? UINT64_MAX : (1ull << (1u << order)) - 1;
}

#endif
