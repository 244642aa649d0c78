/* vmstate saving and (untrusting) loading; see include/tern/vmstate.h. */
#include "tern/vmstate.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 16
#define SUBSECTION 0x01
#define END 0x00

/* ------------------------------------------------------------ saving */

/* Zeroed room for a described object, aligned as strictly as any object
 * tern describes (a cache line: the fd store's entries). */
static void *object_alloc(size_t size)
{
	size_t bytes = size != 0 ? (size + 63) & ~(size_t)63 : 64;
	void *p = aligned_alloc(64, bytes);
	if (p != NULL)
		memset(p, 0, bytes);
	return p;
}

static size_t scalar_size(enum tern_vms_type t)
{
	switch (t) {
	case TERN_VMS_U8: return 1;
	case TERN_VMS_BOOL: return 1;
	case TERN_VMS_U16: return 2;
	case TERN_VMS_U32: case TERN_VMS_I32: return 4;
	case TERN_VMS_U64: case TERN_VMS_I64: return 8;
	default: return 0;
	}
}

static int save_object(const struct tern_vmstate_desc *d, const void *obj, struct tern_buf *out);

static int save_element(enum tern_vms_type t, const struct tern_vmstate_field *f,
			const uint8_t *at, struct tern_buf *out)
{
	switch (t) {
	case TERN_VMS_U8:
		tern_buf_u8(out, *at);
		return 0;
	case TERN_VMS_BOOL:
		tern_buf_u8(out, *(const bool *)at ? 1 : 0);
		return 0;
	case TERN_VMS_U16: {
		uint16_t v;
		memcpy(&v, at, 2);
		uint8_t le[2] = { (uint8_t)v, (uint8_t)(v >> 8) };
		tern_buf_put(out, le, 2);
		return 0;
	}
	case TERN_VMS_U32:
	case TERN_VMS_I32: {
		uint32_t v;
		memcpy(&v, at, 4);
		tern_buf_u32(out, v);
		return 0;
	}
	case TERN_VMS_U64:
	case TERN_VMS_I64: {
		uint64_t v;
		memcpy(&v, at, 8);
		tern_buf_u64(out, v);
		return 0;
	}
	case TERN_VMS_BUFFER:
		tern_buf_put(out, at, f->size);
		return 0;
	case TERN_VMS_STRING: {
		size_t n = strnlen((const char *)at, f->size);
		if (n == f->size || n > UINT8_MAX)
			return -EOVERFLOW;
		tern_buf_u8(out, (uint8_t)n);
		tern_buf_put(out, at, n);
		return 0;
	}
	case TERN_VMS_STRUCT:
		return save_object(f->sub, at, out);
	default:
		return -EINVAL;
	}
}

struct hash_saver {
	const struct tern_vmstate_hash *h;
	struct tern_buf *out;
	uint32_t saved;
	int rc;
};

static int save_hash_entry(void *ctx, const void *key, const void *value)
{
	struct hash_saver *s = ctx;
	s->saved++;
	s->rc = save_object(s->h->key, key, s->out);
	if (s->rc == 0)
		s->rc = save_object(s->h->value, value, s->out);
	return s->rc;
}

static int save_hash(const struct tern_vmstate_hash *h, const void *table, struct tern_buf *out)
{
	uint32_t n = table ? h->count(table) : 0;
	if (n > h->max_entries)
		return -EOVERFLOW;
	tern_buf_u32(out, n);
	struct hash_saver s = { .h = h, .out = out };
	if (table != NULL)
		h->walk(table, save_hash_entry, &s);
	if (s.rc < 0)
		return s.rc;
	return s.saved == n ? 0 : -EPROTO; /* the table's count and walk disagree */
}

static size_t element_size(enum tern_vms_type t, const struct tern_vmstate_field *f)
{
	if (t == TERN_VMS_STRUCT || t == TERN_VMS_BUFFER || t == TERN_VMS_STRING)
		return f->size;
	return scalar_size(t);
}

static int save_field(const struct tern_vmstate_field *f, const uint8_t *base,
		      struct tern_buf *out)
{
	const uint8_t *at = base + f->offset;
	switch (f->type) {
	case TERN_VMS_ARRAY:
	case TERN_VMS_VARRAY:
	case TERN_VMS_VARRAY_PTR: {
		uint32_t n = f->count;
		const uint8_t *elems = at;
		if (f->type != TERN_VMS_ARRAY) {
			memcpy(&n, base + f->count_offset, sizeof n);
			if (f->type == TERN_VMS_VARRAY_PTR)
				memcpy(&elems, at, sizeof elems);
			if (n > f->count || (n > 0 && elems == NULL))
				return -EOVERFLOW;
			tern_buf_u32(out, n);
		}
		size_t step = element_size(f->elem, f);
		for (uint32_t i = 0; i < n; i++) {
			int rc = save_element(f->elem, f, elems + (size_t)i * step, out);
			if (rc < 0)
				return rc;
		}
		return 0;
	}
	case TERN_VMS_CUSTOM: {
		/* Length-prefixed, so the loader can hand it exactly its bytes. */
		struct tern_buf inner = { 0 };
		int rc = f->custom->save(at, &inner);
		if (rc == 0 && inner.failed)
			rc = -ENOMEM;
		if (rc == 0) {
			tern_buf_u64(out, inner.len);
			tern_buf_put(out, inner.data, inner.len);
		}
		tern_buf_free(&inner);
		return rc;
	}
	case TERN_VMS_HASH: {
		void *table;
		memcpy(&table, at, sizeof table);
		return save_hash(f->hash, table, out);
	}
	default:
		return save_element(f->type, f, at, out);
	}
}

static int save_object(const struct tern_vmstate_desc *d, const void *obj, struct tern_buf *out)
{
	size_t nlen = strlen(d->name);
	tern_buf_u8(out, (uint8_t)nlen);
	tern_buf_put(out, d->name, nlen);
	tern_buf_u32(out, d->version);
	for (const struct tern_vmstate_field *f = d->fields; f && f->name; f++) {
		if (f->since > d->version)
			continue; /* not in the version this description writes */
		int rc = save_field(f, obj, out);
		if (rc < 0)
			return rc;
	}
	for (const struct tern_vmstate_subsection *s = d->subsections; s && s->desc; s++) {
		if (s->needed != NULL && !s->needed(obj))
			continue;
		tern_buf_u8(out, SUBSECTION);
		int rc = save_object(s->desc, obj, out);
		if (rc < 0)
			return rc;
	}
	tern_buf_u8(out, END);
	return 0;
}

int tern_vmstate_save(const struct tern_vmstate_desc *d, const void *obj, struct tern_buf *out)
{
	int rc = save_object(d, obj, out);
	return rc < 0 ? rc : out->failed ? -ENOMEM : 0;
}

/* ------------------------------------------------------------ loading */

/* A hash table built by the load, and the one it replaces in the copy. */
struct table_swap {
	const struct tern_vmstate_hash *h;
	void *fresh, *old;
};

struct loader {
	struct tern_reader r;
	struct tern_error *err;
	unsigned depth;
	struct table_swap *swaps;
	size_t nswaps, swaps_cap;
	void **allocs; /* VARRAY_PTR arrays made by this load: freed if it fails */
	size_t nallocs, allocs_cap;
};

static int truncated(struct loader *l, const char *where, const char *what)
{
	return tern_errorf(l->err, -EBADMSG, "%s: input ends inside %s (at byte %zu)", where, what,
			   l->r.at);
}

static int load_object(struct loader *l, const struct tern_vmstate_desc *d, uint8_t *obj);

static int load_element(struct loader *l, const struct tern_vmstate_desc *d,
			const struct tern_vmstate_field *f, enum tern_vms_type t, uint8_t *at)
{
	uint8_t raw[8];
	switch (t) {
	case TERN_VMS_U8:
	case TERN_VMS_BOOL:
		if (tern_read_u8(&l->r, raw) < 0)
			return truncated(l, d->name, f->name);
		if (t == TERN_VMS_BOOL) {
			if (raw[0] > 1)
				return tern_errorf(l->err, -EBADMSG, "%s.%s: boolean is %u, not 0 or 1",
						   d->name, f->name, raw[0]);
			*(bool *)at = raw[0] != 0;
		} else {
			*at = raw[0];
		}
		return 0;
	case TERN_VMS_U16:
	case TERN_VMS_U32:
	case TERN_VMS_I32:
	case TERN_VMS_U64:
	case TERN_VMS_I64: {
		size_t n = scalar_size(t);
		if (tern_read_bytes(&l->r, raw, n) < 0)
			return truncated(l, d->name, f->name);
		memcpy(at, raw, n); /* little-endian wire, little-endian host */
		return 0;
	}
	case TERN_VMS_BUFFER:
		if (tern_read_bytes(&l->r, at, f->size) < 0)
			return truncated(l, d->name, f->name);
		return 0;
	case TERN_VMS_STRING: {
		char s[UINT8_MAX + 1];
		if (tern_read_u8(&l->r, raw) < 0 || tern_read_bytes(&l->r, s, raw[0]) < 0)
			return truncated(l, d->name, f->name);
		if (raw[0] >= f->size)
			return tern_errorf(l->err, -EBADMSG, "%s.%s: string of %u bytes, at most %zu "
					   "fit", d->name, f->name, raw[0], f->size - 1);
		if (memchr(s, '\0', raw[0]) != NULL)
			return tern_errorf(l->err, -EBADMSG, "%s.%s: string holds a NUL byte",
					   d->name, f->name);
		memcpy(at, s, raw[0]);
		at[raw[0]] = '\0';
		return 0;
	}
	case TERN_VMS_STRUCT:
		return load_object(l, f->sub, at);
	default:
		return tern_errorf(l->err, -EINVAL, "%s.%s: bad element type", d->name, f->name);
	}
}

/* The fewest bytes an object of d can take on the wire. */
static size_t object_min_bytes(const struct tern_vmstate_desc *d)
{
	return 1 + strlen(d->name) + 4 + 1;
}

static int load_hash(struct loader *l, const struct tern_vmstate_desc *d,
		     const struct tern_vmstate_field *f, uint8_t *at)
{
	const struct tern_vmstate_hash *h = f->hash;
	uint32_t n;
	if (tern_read_u32(&l->r, &n) < 0)
		return truncated(l, d->name, f->name);
	if (n > h->max_entries)
		return tern_errorf(l->err, -EBADMSG, "%s.%s: %u entries, at most %u allowed",
				   d->name, f->name, n, h->max_entries);
	/* A hostile count must not size the table: size it by what can fit. */
	size_t entry_min = object_min_bytes(h->key) + object_min_bytes(h->value);
	size_t fit = (l->r.len - l->r.at) / entry_min;
	if (n > fit)
		return tern_errorf(l->err, -EBADMSG, "%s.%s: %u entries claimed, the input holds at "
				   "most %zu", d->name, f->name, n, fit);
	if (tern_array_grow(&l->swaps, &l->swaps_cap, l->nswaps, sizeof *l->swaps, 4) < 0)
		return tern_errorf(l->err, -ENOMEM, "out of memory loading %s.%s", d->name, f->name);
	void *fresh = h->create(n);
	uint8_t *key = object_alloc(h->key->size);
	uint8_t *value = object_alloc(h->value->size);
	int rc = 0;
	if (fresh == NULL || key == NULL || value == NULL)
		rc = tern_errorf(l->err, -ENOMEM, "out of memory loading %s.%s", d->name, f->name);
	for (uint32_t i = 0; rc == 0 && i < n; i++) {
		memset(key, 0, h->key->size);
		memset(value, 0, h->value->size);
		rc = load_object(l, h->key, key);
		if (rc == 0)
			rc = load_object(l, h->value, value);
		if (rc == 0 && (rc = h->insert(fresh, key, value)) < 0)
			rc = tern_errorf(l->err, rc == -EEXIST ? -EBADMSG : rc,
					 "%s.%s: entry %u: %s", d->name, f->name, i,
					 rc == -EEXIST ? "a key that is already in the table"
						       : "cannot insert it");
	}
	free(key);
	free(value);
	if (rc < 0) {
		if (fresh != NULL)
			h->destroy(fresh);
		return rc;
	}
	struct table_swap *sw = &l->swaps[l->nswaps++];
	sw->h = h;
	sw->fresh = fresh;
	memcpy(&sw->old, at, sizeof sw->old);
	memcpy(at, &fresh, sizeof fresh);
	return 0;
}

/* Elements behind a pointer: a new array (the old pointer is the caller's
 * to free once the load has succeeded; see tern_vmstate_load). */
static int load_varray_ptr(struct loader *l, const struct tern_vmstate_desc *d,
			   const struct tern_vmstate_field *f, uint8_t *base)
{
	uint32_t n;
	if (tern_read_u32(&l->r, &n) < 0)
		return truncated(l, d->name, f->name);
	size_t step = element_size(f->elem, f);
	size_t least = f->elem == TERN_VMS_STRUCT ? object_min_bytes(f->sub) : step;
	if (n > f->count || (size_t)n > (l->r.len - l->r.at) / (least ? least : 1))
		return tern_errorf(l->err, -EBADMSG, "%s.%s: %u elements, at most %u allowed and "
				   "the input holds fewer", d->name, f->name, n, f->count);
	if (tern_array_grow(&l->allocs, &l->allocs_cap, l->nallocs, sizeof *l->allocs, 4) < 0)
		return tern_errorf(l->err, -ENOMEM, "out of memory loading %s", d->name);
	uint8_t *elems = calloc(n ? n : 1, step);
	if (elems == NULL)
		return tern_errorf(l->err, -ENOMEM, "out of memory loading %s.%s", d->name, f->name);
	l->allocs[l->nallocs++] = elems;
	memcpy(base + f->offset, &elems, sizeof elems);
	memcpy(base + f->count_offset, &n, sizeof n);
	for (uint32_t i = 0; i < n; i++) {
		int rc = load_element(l, d, f, f->elem, elems + (size_t)i * step);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* The load is over: keep the new tables and drop the old, or the reverse. */
static void finish_swaps(struct loader *l, int ok)
{
	for (size_t i = 0; i < l->nallocs; i++)
		if (!ok)
			free(l->allocs[i]);
	free(l->allocs);
	for (size_t i = l->nswaps; i-- > 0;) {
		struct table_swap *sw = &l->swaps[i];
		void *drop = ok ? sw->old : sw->fresh;
		if (drop != NULL)
			sw->h->destroy(drop);
	}
	free(l->swaps);
}

static int load_field(struct loader *l, const struct tern_vmstate_desc *d,
		      const struct tern_vmstate_field *f, uint8_t *base)
{
	uint8_t *at = base + f->offset;
	switch (f->type) {
	case TERN_VMS_ARRAY:
	case TERN_VMS_VARRAY: {
		uint32_t n = f->count;
		if (f->type == TERN_VMS_VARRAY) {
			if (tern_read_u32(&l->r, &n) < 0)
				return truncated(l, d->name, f->name);
			if (n > f->count)
				return tern_errorf(l->err, -EBADMSG, "%s.%s: %u elements, at most %u fit",
						   d->name, f->name, n, f->count);
			memcpy(base + f->count_offset, &n, sizeof n);
		}
		size_t step = element_size(f->elem, f);
		for (uint32_t i = 0; i < n; i++) {
			int rc = load_element(l, d, f, f->elem, at + (size_t)i * step);
			if (rc < 0)
				return rc;
		}
		return 0;
	}
	case TERN_VMS_CUSTOM: {
		uint64_t n = 0;
		if (tern_read_u64(&l->r, &n) < 0)
			return truncated(l, d->name, f->name);
		if (n > l->r.len - l->r.at)
			return tern_errorf(l->err, -EBADMSG, "%s.%s: %llu bytes claimed, %zu left",
					   d->name, f->name, (unsigned long long)n,
					   l->r.len - l->r.at);
		int rc = f->custom->load(at, l->r.p + l->r.at, (size_t)n, l->err);
		if (rc < 0) {
			tern_error_prefix(l->err, "%s.%s", d->name, f->name);
			return rc;
		}
		l->r.at += (size_t)n;
		return 0;
	}
	case TERN_VMS_HASH:
		return load_hash(l, d, f, at);
	case TERN_VMS_VARRAY_PTR:
		return load_varray_ptr(l, d, f, base);
	default:
		return load_element(l, d, f, f->type, at);
	}
}

static int load_header(struct loader *l, const char *expect, uint32_t *version)
{
	uint8_t nlen;
	char name[256];
	if (tern_read_u8(&l->r, &nlen) < 0 || tern_read_bytes(&l->r, name, nlen) < 0)
		return truncated(l, expect, "its name");
	name[nlen] = '\0';
	if (strcmp(name, expect) != 0)
		return tern_errorf(l->err, -EBADMSG, "expected state '%s', found '%.64s'", expect,
				   name);
	if (tern_read_u32(&l->r, version) < 0)
		return truncated(l, expect, "its version");
	return 0;
}

static int load_body(struct loader *l, const struct tern_vmstate_desc *d, uint8_t *obj,
		     uint32_t version)
{
	if (version < d->min_version || version > d->version)
		return tern_errorf(l->err, -EPROTO, "%s version %u: this tern loads versions %u to %u",
				   d->name, version, d->min_version, d->version);
	for (const struct tern_vmstate_field *f = d->fields; f && f->name; f++) {
		if (f->since > version)
			continue;
		int rc = load_field(l, d, f, obj);
		if (rc < 0)
			return rc;
	}
	for (;;) {
		uint8_t marker;
		if (tern_read_u8(&l->r, &marker) < 0)
			return truncated(l, d->name, "its end marker");
		if (marker == END)
			break;
		if (marker != SUBSECTION)
			return tern_errorf(l->err, -EBADMSG, "%s: bad marker 0x%02x after the fields",
					   d->name, marker);
		/* Which subsection: peek at its name. */
		size_t mark = l->r.at;
		uint8_t nlen;
		char name[256];
		if (tern_read_u8(&l->r, &nlen) < 0 || tern_read_bytes(&l->r, name, nlen) < 0)
			return truncated(l, d->name, "a subsection name");
		name[nlen] = '\0';
		l->r.at = mark;
		const struct tern_vmstate_subsection *s = d->subsections;
		while (s && s->desc && strcmp(s->desc->name, name) != 0)
			s++;
		if (s == NULL || s->desc == NULL)
			return tern_errorf(l->err, -EPROTO, "%s: unknown subsection '%.64s' (saved by a "
					   "newer tern?)", d->name, name);
		int rc = load_object(l, s->desc, obj);
		if (rc < 0)
			return rc;
	}
	if (d->post_load != NULL)
		return d->post_load(obj, version, l->err);
	return 0;
}

static int load_object(struct loader *l, const struct tern_vmstate_desc *d, uint8_t *obj)
{
	if (++l->depth > MAX_DEPTH)
		return tern_errorf(l->err, -ELOOP, "%s: nested too deeply", d->name);
	uint32_t version;
	int rc = load_header(l, d->name, &version);
	if (rc == 0)
		rc = load_body(l, d, obj, version);
	l->depth--;
	return rc;
}

int tern_vmstate_load(const struct tern_vmstate_desc *d, void *obj, const uint8_t *in,
		      size_t len, struct tern_error *err)
{
	uint8_t *copy = object_alloc(d->size);
	if (copy == NULL)
		return tern_errorf(err, -ENOMEM, "out of memory loading %s", d->name);
	memcpy(copy, obj, d->size);
	struct loader l = { .r = { in, len, 0 }, .err = err };
	int rc = load_object(&l, d, copy);
	if (rc == 0 && l.r.at != len)
		rc = tern_errorf(err, -EBADMSG, "%s: %zu bytes left over after the state", d->name,
				 len - l.r.at);
	if (rc == 0)
		memcpy(obj, copy, d->size);
	finish_swaps(&l, rc == 0);
	free(copy);
	return rc;
}
