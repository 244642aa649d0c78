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

/* ============================================================ field tables
 *
 * One macro per kind of field, used for every table in tern, so that each
 * field is stated once and the compiler checks that the member has the C
 * type its wire type reads and writes (a TERN_VMS_U32 field on a uint64_t
 * member does not build):
 *
 *     static const struct tern_vmstate_field fields[] = {
 *             TERN_VMS_FIELD_U32(struct machine_shape, vcpus, 0),
 *             TERN_VMS_FIELD_VARRAY(struct uart_state, rx, rx_count, U8, 0),
 *             TERN_VMS_FIELD_END,
 *     };
 *
 * T is the parent's type (struct x), m the member.  A field is named after
 * its member; the _AS forms take the wire name when the two differ, since
 * names are part of the wire format and a saved field is never renamed.
 * `since` is the version the field first appears in (0: always).  KIND is
 * a scalar's tag without its prefix: U8, U16, U32, U64, I32, I64, BOOL.
 *
 *   U8 U16 U32 U64 I32 I64 BOOL (T, m, since)   m is uint8_t ... int64_t, bool
 *   BUFFER (T, m, since)             m is an array, struct or union: its bytes
 *   STRING (T, m, since)             m is a char array (its capacity)
 *   STRUCT (T, m, sub, since)        m is a struct described by sub
 *   ARRAY (T, m, KIND, since)        m is KIND's type [N]: N of them
 *   ARRAY_STRUCT (T, m, sub, since)  m is an array of structs described by sub
 *   VARRAY (T, m, n, KIND, since)    m is KIND's type [N], n the uint32_t count
 *   VARRAY_STRUCT (T, m, n, sub, since)
 *   VARRAY_STRING (T, m, n, since)   m is char [N][S]: up to N strings
 *   VARRAY_PTR (T, m, n, KIND, max, since)        m points to up to max elements
 *   VARRAY_PTR_STRUCT (T, m, n, sub, max, since)  ... of structs described by sub
 *   CUSTOM (T, m, custom, since)     m is saved and loaded by *custom
 *   HASH (T, m, hash, since)         m is a pointer to a table reached by *hash
 *
 * That a struct member is the C structure its sub-description describes
 * (sub->size) is not a constant expression: tern_vmstate_desc_check
 * verifies it, with everything else a table can get wrong, when a
 * description is described (tests/test_vmstate_desc does, for all).
 */

/* C types of the scalar tags. */
#define TERN_VMS_CTYPE_U8_ uint8_t
#define TERN_VMS_CTYPE_U16_ uint16_t
#define TERN_VMS_CTYPE_U32_ uint32_t
#define TERN_VMS_CTYPE_U64_ uint64_t
#define TERN_VMS_CTYPE_I32_ int32_t
#define TERN_VMS_CTYPE_I64_ int64_t
#define TERN_VMS_CTYPE_BOOL_ bool

/* 0, or a build failure saying msg (a _Static_assert inside an expression,
 * so it can sit in an initializer). */
#define TERN_VMS_CHECK_(cond, msg) \
	(0 * sizeof(struct { _Static_assert(cond, msg); char tern_vms_check_; }))
#define TERN_VMS_MEMBER_(T, m) (((T *)0)->m)
#define TERN_VMS_IS_(x, C) __builtin_types_compatible_p(__typeof__(x), C)
/* Arrays decay (and small integers promote) in a conditional; structs,
 * pointers and wide scalars keep their type. */
#define TERN_VMS_DECAYS_(x) \
	(!__builtin_types_compatible_p(__typeof__(x), __typeof__(0 ? (x) : (x))))
/* GCC's (and clang's) type classes: 5 pointer, 12 struct, 13 union, 14 array. */
#define TERN_VMS_CLASS_(x) __builtin_classify_type(x)
#define TERN_VMS_IS_RECORD_(x) (TERN_VMS_CLASS_(x) == 12 || TERN_VMS_CLASS_(x) == 13)
#define TERN_VMS_IS_ARRAY_(x) \
	((TERN_VMS_CLASS_(x) == 5 || TERN_VMS_CLASS_(x) == 14) && TERN_VMS_DECAYS_(x))
#define TERN_VMS_IS_POINTER_(x) (TERN_VMS_CLASS_(x) == 5 && !TERN_VMS_DECAYS_(x))
/* m is an array of exactly C elements (not a pointer, not a struct). */
#define TERN_VMS_IS_ARRAY_OF_(x, C) TERN_VMS_IS_(x, C[sizeof(x) / sizeof(C)])
#define TERN_VMS_LEN_(x) ((uint32_t)(sizeof(x) / sizeof((x)[0])))

/* The offset of m, checked. */
#define TERN_VMS_AT_(T, m, cond, msg) (offsetof(T, m) + TERN_VMS_CHECK_(cond, msg))
#define TERN_VMS_COUNT_AT_(T, m, n)                                                      \
	TERN_VMS_AT_(T, n, TERN_VMS_IS_(TERN_VMS_MEMBER_(T, n), uint32_t),                \
		     "vmstate field " #m ": its count " #n " is not a uint32_t")

#define TERN_VMS_STR_(x) TERN_VMS_STR2_(x)
#define TERN_VMS_STR2_(x) #x
#define TERN_VMS_FIELD_SCALAR_AS_(fname, KIND, T, m, since_)                             \
	{ .name = fname, .type = TERN_VMS_##KIND,                                           \
	  .offset = TERN_VMS_AT_(T, m, TERN_VMS_IS_(TERN_VMS_MEMBER_(T, m), TERN_VMS_CTYPE_##KIND##_), \
				 "vmstate field " #m ": TERN_VMS_" #KIND " on a member that is not " \
				 "a " #KIND " (" TERN_VMS_STR_(TERN_VMS_CTYPE_##KIND##_) ")"),       \
	  .since = since_ }

#define TERN_VMS_FIELD_U8_AS(name, T, m, since) TERN_VMS_FIELD_SCALAR_AS_(name, U8, T, m, since)
#define TERN_VMS_FIELD_U16_AS(name, T, m, since) TERN_VMS_FIELD_SCALAR_AS_(name, U16, T, m, since)
#define TERN_VMS_FIELD_U32_AS(name, T, m, since) TERN_VMS_FIELD_SCALAR_AS_(name, U32, T, m, since)
#define TERN_VMS_FIELD_U64_AS(name, T, m, since) TERN_VMS_FIELD_SCALAR_AS_(name, U64, T, m, since)
#define TERN_VMS_FIELD_I32_AS(name, T, m, since) TERN_VMS_FIELD_SCALAR_AS_(name, I32, T, m, since)
#define TERN_VMS_FIELD_I64_AS(name, T, m, since) TERN_VMS_FIELD_SCALAR_AS_(name, I64, T, m, since)
#define TERN_VMS_FIELD_BOOL_AS(name, T, m, since) TERN_VMS_FIELD_SCALAR_AS_(name, BOOL, T, m, since)
#define TERN_VMS_FIELD_U8(T, m, since) TERN_VMS_FIELD_U8_AS(#m, T, m, since)
#define TERN_VMS_FIELD_U16(T, m, since) TERN_VMS_FIELD_U16_AS(#m, T, m, since)
#define TERN_VMS_FIELD_U32(T, m, since) TERN_VMS_FIELD_U32_AS(#m, T, m, since)
#define TERN_VMS_FIELD_U64(T, m, since) TERN_VMS_FIELD_U64_AS(#m, T, m, since)
#define TERN_VMS_FIELD_I32(T, m, since) TERN_VMS_FIELD_I32_AS(#m, T, m, since)
#define TERN_VMS_FIELD_I64(T, m, since) TERN_VMS_FIELD_I64_AS(#m, T, m, since)
#define TERN_VMS_FIELD_BOOL(T, m, since) TERN_VMS_FIELD_BOOL_AS(#m, T, m, since)

#define TERN_VMS_FIELD_BUFFER_AS(fname, T, m, since_)                                    \
	{ .name = fname, .type = TERN_VMS_BUFFER,                                            \
	  .offset = TERN_VMS_AT_(T, m, TERN_VMS_IS_RECORD_(TERN_VMS_MEMBER_(T, m)) ||         \
				 TERN_VMS_IS_ARRAY_(TERN_VMS_MEMBER_(T, m)),                  \
				 "vmstate field " #m ": a buffer is an array, struct or union"), \
	  .size = sizeof(TERN_VMS_MEMBER_(T, m)), .since = since_ }
#define TERN_VMS_FIELD_BUFFER(T, m, since) TERN_VMS_FIELD_BUFFER_AS(#m, T, m, since)

#define TERN_VMS_FIELD_STRING_AS(fname, T, m, since_)                                    \
	{ .name = fname, .type = TERN_VMS_STRING,                                            \
	  .offset = TERN_VMS_AT_(T, m, TERN_VMS_IS_ARRAY_OF_(TERN_VMS_MEMBER_(T, m), char),   \
				 "vmstate field " #m ": a string is a char array"),            \
	  .size = sizeof(TERN_VMS_MEMBER_(T, m)), .since = since_ }
#define TERN_VMS_FIELD_STRING(T, m, since) TERN_VMS_FIELD_STRING_AS(#m, T, m, since)

#define TERN_VMS_FIELD_STRUCT_AS(fname, T, m, sub_, since_)                              \
	{ .name = fname, .type = TERN_VMS_STRUCT,                                            \
	  .offset = TERN_VMS_AT_(T, m, TERN_VMS_IS_RECORD_(TERN_VMS_MEMBER_(T, m)),           \
				 "vmstate field " #m ": TERN_VMS_STRUCT on a member that is not " \
				 "a struct"),                                                  \
	  .size = sizeof(TERN_VMS_MEMBER_(T, m)), .sub = (sub_), .since = since_ }
#define TERN_VMS_FIELD_STRUCT(T, m, sub, since) TERN_VMS_FIELD_STRUCT_AS(#m, T, m, sub, since)

#define TERN_VMS_FIELD_ARRAY_AS(fname, T, m, KIND, since_)                               \
	{ .name = fname, .type = TERN_VMS_ARRAY,                                             \
	  .offset = TERN_VMS_AT_(T, m, TERN_VMS_IS_ARRAY_OF_(TERN_VMS_MEMBER_(T, m),          \
							     TERN_VMS_CTYPE_##KIND##_),      \
				 "vmstate field " #m ": not an array of " #KIND),              \
	  .count = TERN_VMS_LEN_(TERN_VMS_MEMBER_(T, m)), .elem = TERN_VMS_##KIND,            \
	  .since = since_ }
#define TERN_VMS_FIELD_ARRAY(T, m, KIND, since) TERN_VMS_FIELD_ARRAY_AS(#m, T, m, KIND, since)

#define TERN_VMS_ARRAY_OF_STRUCTS_(T, m)                                                 \
	(TERN_VMS_IS_ARRAY_(TERN_VMS_MEMBER_(T, m)) &&                                      \
	 TERN_VMS_IS_RECORD_(TERN_VMS_MEMBER_(T, m)[0]))
#define TERN_VMS_FIELD_ARRAY_STRUCT_AS(fname, T, m, sub_, since_)                        \
	{ .name = fname, .type = TERN_VMS_ARRAY,                                             \
	  .offset = TERN_VMS_AT_(T, m, TERN_VMS_ARRAY_OF_STRUCTS_(T, m),                      \
				 "vmstate field " #m ": not an array of structs"),             \
	  .size = sizeof(TERN_VMS_MEMBER_(T, m)[0]),                                         \
	  .count = TERN_VMS_LEN_(TERN_VMS_MEMBER_(T, m)), .elem = TERN_VMS_STRUCT,            \
	  .sub = (sub_), .since = since_ }
#define TERN_VMS_FIELD_ARRAY_STRUCT(T, m, sub, since)                                    \
	TERN_VMS_FIELD_ARRAY_STRUCT_AS(#m, T, m, sub, since)

#define TERN_VMS_FIELD_VARRAY_AS(fname, T, m, n, KIND, since_)                           \
	{ .name = fname, .type = TERN_VMS_VARRAY,                                            \
	  .offset = TERN_VMS_AT_(T, m, TERN_VMS_IS_ARRAY_OF_(TERN_VMS_MEMBER_(T, m),          \
							     TERN_VMS_CTYPE_##KIND##_),      \
				 "vmstate field " #m ": not an array of " #KIND),              \
	  .count = TERN_VMS_LEN_(TERN_VMS_MEMBER_(T, m)),                                    \
	  .count_offset = TERN_VMS_COUNT_AT_(T, m, n), .elem = TERN_VMS_##KIND,               \
	  .since = since_ }
#define TERN_VMS_FIELD_VARRAY(T, m, n, KIND, since)                                      \
	TERN_VMS_FIELD_VARRAY_AS(#m, T, m, n, KIND, since)

#define TERN_VMS_FIELD_VARRAY_STRUCT_AS(fname, T, m, n, sub_, since_)                    \
	{ .name = fname, .type = TERN_VMS_VARRAY,                                            \
	  .offset = TERN_VMS_AT_(T, m, TERN_VMS_ARRAY_OF_STRUCTS_(T, m),                      \
				 "vmstate field " #m ": not an array of structs"),             \
	  .size = sizeof(TERN_VMS_MEMBER_(T, m)[0]),                                         \
	  .count = TERN_VMS_LEN_(TERN_VMS_MEMBER_(T, m)),                                    \
	  .count_offset = TERN_VMS_COUNT_AT_(T, m, n), .elem = TERN_VMS_STRUCT,               \
	  .sub = (sub_), .since = since_ }
#define TERN_VMS_FIELD_VARRAY_STRUCT(T, m, n, sub, since)                                \
	TERN_VMS_FIELD_VARRAY_STRUCT_AS(#m, T, m, n, sub, since)

/* m is char [N][S]: up to N strings of capacity S each, n the count. */
#define TERN_VMS_FIELD_VARRAY_STRING_AS(fname, T, m, n, since_)                          \
	{ .name = fname, .type = TERN_VMS_VARRAY,                                            \
	  .offset = TERN_VMS_AT_(T, m, TERN_VMS_IS_ARRAY_(TERN_VMS_MEMBER_(T, m)) &&          \
				 TERN_VMS_IS_ARRAY_OF_(TERN_VMS_MEMBER_(T, m)[0], char),       \
				 "vmstate field " #m ": not an array of char arrays"),         \
	  .size = sizeof(TERN_VMS_MEMBER_(T, m)[0]),                                         \
	  .count = TERN_VMS_LEN_(TERN_VMS_MEMBER_(T, m)),                                    \
	  .count_offset = TERN_VMS_COUNT_AT_(T, m, n), .elem = TERN_VMS_STRING,               \
	  .since = since_ }
#define TERN_VMS_FIELD_VARRAY_STRING(T, m, n, since)                                     \
	TERN_VMS_FIELD_VARRAY_STRING_AS(#m, T, m, n, since)

#define TERN_VMS_FIELD_VARRAY_PTR_AS(fname, T, m, n, KIND, max, since_)                  \
	{ .name = fname, .type = TERN_VMS_VARRAY_PTR,                                        \
	  .offset = TERN_VMS_AT_(T, m, TERN_VMS_IS_(TERN_VMS_MEMBER_(T, m),                   \
						    TERN_VMS_CTYPE_##KIND##_ *),             \
				 "vmstate field " #m ": not a pointer to " #KIND),             \
	  .count = (max), .count_offset = TERN_VMS_COUNT_AT_(T, m, n),                       \
	  .elem = TERN_VMS_##KIND, .since = since_ }
#define TERN_VMS_FIELD_VARRAY_PTR(T, m, n, KIND, max, since)                             \
	TERN_VMS_FIELD_VARRAY_PTR_AS(#m, T, m, n, KIND, max, since)

#define TERN_VMS_FIELD_VARRAY_PTR_STRUCT_AS(fname, T, m, n, sub_, max, since_)           \
	{ .name = fname, .type = TERN_VMS_VARRAY_PTR,                                        \
	  .offset = TERN_VMS_AT_(T, m, TERN_VMS_IS_POINTER_(TERN_VMS_MEMBER_(T, m)) &&        \
				 TERN_VMS_IS_RECORD_(*TERN_VMS_MEMBER_(T, m)),                \
				 "vmstate field " #m ": not a pointer to structs"),            \
	  .size = sizeof(*TERN_VMS_MEMBER_(T, m)), .count = (max),                          \
	  .count_offset = TERN_VMS_COUNT_AT_(T, m, n), .elem = TERN_VMS_STRUCT,               \
	  .sub = (sub_), .since = since_ }
#define TERN_VMS_FIELD_VARRAY_PTR_STRUCT(T, m, n, sub, max, since)                       \
	TERN_VMS_FIELD_VARRAY_PTR_STRUCT_AS(#m, T, m, n, sub, max, since)

#define TERN_VMS_FIELD_CUSTOM_AS(fname, T, m, custom_, since_)                           \
	{ .name = fname, .type = TERN_VMS_CUSTOM, .offset = offsetof(T, m),                  \
	  .custom = (custom_), .since = since_ }
#define TERN_VMS_FIELD_CUSTOM(T, m, custom, since) TERN_VMS_FIELD_CUSTOM_AS(#m, T, m, custom, since)

#define TERN_VMS_FIELD_HASH_AS(fname, T, m, hash_, since_)                               \
	{ .name = fname, .type = TERN_VMS_HASH,                                              \
	  .offset = TERN_VMS_AT_(T, m, TERN_VMS_IS_POINTER_(TERN_VMS_MEMBER_(T, m)),          \
				 "vmstate field " #m ": a hash table field is a pointer"),     \
	  .hash = (hash_), .since = since_ }
#define TERN_VMS_FIELD_HASH(T, m, hash, since) TERN_VMS_FIELD_HASH_AS(#m, T, m, hash, since)

#define TERN_VMS_FIELD_END { .name = NULL }

/* ============================================================ descriptions
 *
 * For tests/vmstate.desc, the checked-in description of every state tern
 * saves (regenerated by `make vmstate-desc`; tests/test_vmstate_desc fails
 * when the build's differs): the wire form of a description in a stable
 * text.  One block per description, d first, then each one it reaches
 * (struct fields, elements, hash keys and values, subsections), each
 * once, in the order first reached:
 *
 *     <indent>desc NAME version V min M
 *     <indent>\tfield NAME TYPE [ATTRIBUTES] [since V]
 *     <indent>\tsubsection NAME
 *
 * with TYPE and its attributes one of: u8 u16 u32 u64 i32 i64 bool;
 * buffer size N; string size N (capacity with the NUL); struct NAME;
 * array N of ELEM; varray max N of ELEM; varray-ptr max N of ELEM;
 * custom; hash max N key NAME value NAME (ELEM: a scalar, or struct NAME).
 * C offsets and sizes of structures are not in it: they are not the wire.
 */
struct tern_buf;

/* Append the description of d (indented by `indent` tabs).  0, -ENOMEM, or
 * what tern_vmstate_desc_check finds wrong with d. */
int tern_vmstate_describe(const struct tern_vmstate_desc *d, unsigned indent,
			  struct tern_buf *out, struct tern_error *err);

/* Everything about d (and what it reaches) that a table can get wrong and
 * the compiler cannot see: names (1 .. 255 bytes, unique among a
 * description's fields, and no two descriptions reached from d sharing
 * one), versions (min <= version; a field's since <= version), types,
 * members inside the structure, a struct member of its sub-description's
 * size, string capacities, counts.  0 or -EINVAL saying what and where. */
int tern_vmstate_desc_check(const struct tern_vmstate_desc *d, struct tern_error *err);

/*
 * Compare a checked-in description file with the build's.  Both are
 * blocks, each starting with a line "section NAME", made of lines and
 * desc blocks as above.  0 when equal; otherwise -EPROTO and a message:
 * a description (by section and name) that changed while its version did
 * not, "section X changed without a version bump (from N)"; else (a
 * version changed, a section came or went, another line changed)
 * "update tests/vmstate.desc: run make vmstate-desc".
 */
int tern_vmstate_desc_compare(const char *checked_in, const char *built,
			      struct tern_error *err);

#endif
