/*
 * vmstate: typed, versioned serialization of C structures, described by
 * field tables (in the spirit of QEMU's VMStateDescription).
 *
 * Wire form of an object (little-endian throughout):
 *
 *     name-length u8, name, version u32,
 *     the fields present in that version, in table order,
 *     subsections: { 0x01, an object } ..., then 0x00
 *
 * Scalars are fixed width; a buffer is its bytes; a string is a u8
 * length and its bytes (no NUL); a fixed array is its elements; a variable
 * array (inline or behind a pointer) is a u32 count, then that many elements; a nested structure is a
 * whole object (its own name and version); a hash table is a u32 count,
 * then that many entries, each a key object and a value object.
 *
 * The loader trusts nothing: names must match, versions must lie in the
 * description's range, booleans must be 0 or 1, every count must fit the
 * array's capacity and every length the input, a table must hold no key
 * twice, and the input must end exactly where the object does.  It writes an object's memory only with
 * values it has checked, and a description's post_load may reject values
 * that are well formed but meaningless.
 */
#ifndef TERN_VMSTATE_H
#define TERN_VMSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tern/buf.h"
#include "tern/error.h"

enum tern_vms_type {
	TERN_VMS_U8,
	TERN_VMS_U16,
	TERN_VMS_U32,
	TERN_VMS_U64,
	TERN_VMS_I32,
	TERN_VMS_I64,
	TERN_VMS_BOOL,   /* a C bool */
	TERN_VMS_BUFFER, /* `size` bytes */
	TERN_VMS_STRUCT, /* an object described by `sub`, `size` bytes in C */
	TERN_VMS_ARRAY,  /* `count` elements of type `elem` */
	TERN_VMS_VARRAY, /* up to `count` elements; how many is the uint32_t at count_offset */
	TERN_VMS_CUSTOM, /* saved and loaded by the description's own functions */
	TERN_VMS_STRING, /* a NUL-terminated char[size], at most 255 bytes before the NUL */
	TERN_VMS_HASH,   /* a key -> value table behind a pointer; see tern_vmstate_hash */
	TERN_VMS_VARRAY_PTR, /* as VARRAY, but the elements are behind a pointer at `offset`:
			      * the loader allocates them and overwrites the pointer (load
			      * into zeroed objects; free() it), at most `count` */
};

struct tern_vmstate_desc;

/*
 * A hash table field: the parent holds a pointer to a table of any kind,
 * which these functions reach.  Entries are saved as a key object then a
 * value object, described by `key` and `value` (whose `size` is the C
 * size of the scratch structures passed to insert and walk's callback;
 * the loader's scratch structures are 64-byte aligned).
 *
 * Loading builds a new table with create and insert; only when the whole
 * object has loaded does it take the old table's place (the old one is
 * destroyed), and on any failure the new one is destroyed and the parent
 * keeps its old pointer.  insert returns -EEXIST for a key already there.
 */
struct tern_vmstate_hash {
	const struct tern_vmstate_desc *key, *value;
	uint32_t max_entries;
	uint32_t (*count)(const void *table);
	/* Call fn for every entry, stopping at its first nonzero return. */
	int (*walk)(const void *table, int (*fn)(void *ctx, const void *key, const void *value),
		    void *ctx);
	void *(*create)(uint32_t expected_entries);
	int (*insert)(void *table, const void *key, const void *value);
	void (*destroy)(void *table);
};

struct tern_vmstate_custom {
	int (*save)(const void *field, struct tern_buf *out);
	/* Parse exactly `len` bytes into *field; on failure, leave it unchanged. */
	int (*load)(void *field, const uint8_t *in, size_t len, struct tern_error *err);
};

struct tern_vmstate_field {
	const char *name;
	enum tern_vms_type type;
	size_t offset;       /* in the parent structure */
	size_t size;         /* BUFFER: bytes; STRING: capacity; STRUCT (or array of): element size */
	uint32_t count;      /* ARRAY: elements; VARRAY: capacity */
	size_t count_offset; /* VARRAY: offset of its uint32_t count in the parent */
	enum tern_vms_type elem; /* ARRAY / VARRAY: element type (a scalar or STRUCT) */
	const struct tern_vmstate_desc *sub; /* STRUCT elements */
	const struct tern_vmstate_custom *custom;
	const struct tern_vmstate_hash *hash;
	uint32_t since;      /* present from this version on (0: always) */
};

/* A part of the same object saved only when needed (like QEMU's
 * subsections): older loaders that do not know it reject the stream,
 * newer ones accept its absence. */
struct tern_vmstate_subsection {
	const struct tern_vmstate_desc *desc;
	bool (*needed)(const void *obj);
};

struct tern_vmstate_desc {
	const char *name;     /* 1 .. 255 bytes */
	size_t size;          /* sizeof the C structure */
	uint32_t version;     /* what is saved */
	uint32_t min_version; /* the oldest that loads */
	const struct tern_vmstate_field *fields;               /* ends with a NULL name */
	const struct tern_vmstate_subsection *subsections;     /* ends with a NULL desc */
	/* After every field is in: reject values out of range (0 or -errno). */
	int (*post_load)(void *obj, uint32_t version, struct tern_error *err);
};

/* Append obj, as described, to out.  0, or -ENOMEM. */
int tern_vmstate_save(const struct tern_vmstate_desc *d, const void *obj, struct tern_buf *out);

/* Load exactly in[0 .. len) into obj.  Fields absent from an older version
 * keep whatever obj held.  0, or a negative errno with a message; on
 * failure obj is left as it was (the load works on a copy). */
int tern_vmstate_load(const struct tern_vmstate_desc *d, void *obj, const uint8_t *in,
		      size_t len, struct tern_error *err);

#endif
