/* Describing vmstate descriptions, and checking them; see the end of
 * include/tern/vmstate.h. */
#include "tern/vmstate.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define MAX_DEPTH 16 /* as deep as the loader goes */
#define MAX_DESCS 256

/* Every description reached from one, each once, in the order first reached. */
struct reached {
	const struct tern_vmstate_desc *desc[MAX_DESCS];
	size_t n;
	struct tern_error *err;
};

static int reach(struct reached *r, const struct tern_vmstate_desc *d, unsigned depth,
		 const char *from)
{
	if (d == NULL)
		return tern_errorf(r->err, -EINVAL, "%s: no description", from);
	for (size_t i = 0; i < r->n; i++)
		if (r->desc[i] == d)
			return 0;
	if (depth > MAX_DEPTH)
		return tern_errorf(r->err, -EINVAL, "%s: descriptions nested more than %d deep", from,
				   MAX_DEPTH);
	if (d->name == NULL || d->name[0] == '\0' || strlen(d->name) > 255)
		return tern_errorf(r->err, -EINVAL, "%s: a description needs a name of 1 to 255 bytes",
				   from);
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->desc[i]->name, d->name) == 0)
			return tern_errorf(r->err, -EINVAL, "two different descriptions are named %s",
					   d->name);
	if (r->n == MAX_DESCS)
		return tern_errorf(r->err, -EINVAL, "more than %d descriptions", MAX_DESCS);
	r->desc[r->n++] = d;
	int rc = 0;
	for (const struct tern_vmstate_field *f = d->fields; rc == 0 && f && f->name; f++) {
		if (f->sub != NULL && (f->type == TERN_VMS_STRUCT || f->elem == TERN_VMS_STRUCT))
			rc = reach(r, f->sub, depth + 1, d->name);
		if (rc == 0 && f->type == TERN_VMS_HASH && f->hash != NULL &&
		    (rc = reach(r, f->hash->key, depth + 1, d->name)) == 0)
			rc = reach(r, f->hash->value, depth + 1, d->name);
	}
	for (const struct tern_vmstate_subsection *s = d->subsections; rc == 0 && s && s->desc; s++)
		rc = reach(r, s->desc, depth + 1, d->name);
	return rc;
}

/* ------------------------------------------------------------ checking */

static size_t scalar_bytes(enum tern_vms_type t)
{
	switch (t) {
	case TERN_VMS_U8: case TERN_VMS_BOOL: return 1;
	case TERN_VMS_U16: return 2;
	case TERN_VMS_U32: case TERN_VMS_I32: return 4;
	case TERN_VMS_U64: case TERN_VMS_I64: return 8;
	default: return 0;
	}
}

#define BAD(...) tern_errorf(err, -EINVAL, __VA_ARGS__)

/* An element (or a whole STRUCT / BUFFER / STRING field) of type t: its C
 * size, or 0 after writing what is wrong. */
static size_t check_element(const struct tern_vmstate_desc *d, const struct tern_vmstate_field *f,
			    enum tern_vms_type t, struct tern_error *err)
{
	if (scalar_bytes(t) != 0)
		return scalar_bytes(t);
	switch (t) {
	case TERN_VMS_BUFFER:
		if (f->size == 0)
			BAD("%s.%s: a buffer of no bytes", d->name, f->name);
		return f->size;
	case TERN_VMS_STRING:
		if (f->size < 1 || f->size > 256)
			BAD("%s.%s: a string's capacity is 1 to 256 bytes, not %zu", d->name,
			    f->name, f->size);
		return f->size >= 1 && f->size <= 256 ? f->size : 0;
	case TERN_VMS_STRUCT:
		if (f->sub == NULL || f->size != f->sub->size) {
			BAD("%s.%s: a structure of %zu bytes described by %s, of %zu", d->name,
			    f->name, f->size, f->sub ? f->sub->name : "nothing",
			    f->sub ? f->sub->size : 0);
			return 0;
		}
		return f->size ? f->size : 1;
	default:
		BAD("%s.%s: type %d cannot be an element", d->name, f->name, (int)t);
		return 0;
	}
}

/* [at, at + n) lies inside the structure. */
static int inside(const struct tern_vmstate_desc *d, size_t at, size_t n)
{
	return at <= d->size && n <= d->size - at;
}

static int check_field(const struct tern_vmstate_desc *d, const struct tern_vmstate_field *f,
		       struct tern_error *err)
{
	if (f->name[0] == '\0' || strlen(f->name) > 255)
		return BAD("%s: a field needs a name of 1 to 255 bytes", d->name);
	for (const struct tern_vmstate_field *g = d->fields; g != f; g++)
		if (strcmp(g->name, f->name) == 0)
			return BAD("%s: two fields are named %s", d->name, f->name);
	if (f->since > d->version)
		return BAD("%s.%s: since version %u, after the description's %u", d->name, f->name,
			   f->since, d->version);
	size_t n, step;
	switch (f->type) {
	case TERN_VMS_ARRAY:
	case TERN_VMS_VARRAY:
		if ((step = check_element(d, f, f->elem, err)) == 0)
			return -EINVAL;
		if (f->count == 0 || f->count > SIZE_MAX / step)
			return BAD("%s.%s: an array of %u elements", d->name, f->name, f->count);
		n = step * f->count;
		break;
	case TERN_VMS_VARRAY_PTR:
		if (check_element(d, f, f->elem, err) == 0)
			return -EINVAL;
		if (f->count == 0)
			return BAD("%s.%s: at most no elements", d->name, f->name);
		n = sizeof(void *);
		break;
	case TERN_VMS_CUSTOM:
		if (f->custom == NULL || f->custom->save == NULL || f->custom->load == NULL)
			return BAD("%s.%s: a custom field without its functions", d->name, f->name);
		n = 0;
		break;
	case TERN_VMS_HASH: {
		const struct tern_vmstate_hash *h = f->hash;
		if (h == NULL || h->key == NULL || h->value == NULL || h->count == NULL ||
		    h->walk == NULL || h->create == NULL || h->insert == NULL || h->destroy == NULL)
			return BAD("%s.%s: a hash table without its descriptions and functions",
				   d->name, f->name);
		n = sizeof(void *);
		break;
	}
	default:
		if ((n = check_element(d, f, f->type, err)) == 0)
			return -EINVAL;
	}
	if (!inside(d, f->offset, n))
		return BAD("%s.%s: %zu bytes at %zu, outside its structure of %zu", d->name, f->name,
			   n, f->offset, d->size);
	if ((f->type == TERN_VMS_VARRAY || f->type == TERN_VMS_VARRAY_PTR) &&
	    !inside(d, f->count_offset, sizeof(uint32_t)))
		return BAD("%s.%s: its count at %zu is outside its structure of %zu", d->name,
			   f->name, f->count_offset, d->size);
	return 0;
}

static int check_one(const struct tern_vmstate_desc *d, struct tern_error *err)
{
	if (d->min_version > d->version)
		return BAD("%s: loads versions %u to %u", d->name, d->min_version, d->version);
	for (const struct tern_vmstate_field *f = d->fields; f && f->name; f++) {
		int rc = check_field(d, f, err);
		if (rc < 0)
			return rc;
	}
	for (const struct tern_vmstate_subsection *s = d->subsections; s && s->desc; s++)
		if (s->desc->size > d->size)
			return BAD("%s: subsection %s describes %zu bytes of its %zu", d->name,
				   s->desc->name, s->desc->size, d->size);
	return 0;
}

static int check_reached(struct reached *r, const struct tern_vmstate_desc *d,
			 struct tern_error *err)
{
	r->n = 0;
	r->err = err;
	int rc = reach(r, d, 0, "vmstate");
	for (size_t i = 0; rc == 0 && i < r->n; i++)
		rc = check_one(r->desc[i], err);
	return rc;
}

int tern_vmstate_desc_check(const struct tern_vmstate_desc *d, struct tern_error *err)
{
	struct reached r;
	return check_reached(&r, d, err);
}

/* ------------------------------------------------------------ describing */

static const char *type_name(enum tern_vms_type t)
{
	switch (t) {
	case TERN_VMS_U8: return "u8";
	case TERN_VMS_U16: return "u16";
	case TERN_VMS_U32: return "u32";
	case TERN_VMS_U64: return "u64";
	case TERN_VMS_I32: return "i32";
	case TERN_VMS_I64: return "i64";
	case TERN_VMS_BOOL: return "bool";
	case TERN_VMS_BUFFER: return "buffer";
	case TERN_VMS_STRUCT: return "struct";
	case TERN_VMS_ARRAY: return "array";
	case TERN_VMS_VARRAY: return "varray";
	case TERN_VMS_CUSTOM: return "custom";
	case TERN_VMS_STRING: return "string";
	case TERN_VMS_HASH: return "hash";
	case TERN_VMS_VARRAY_PTR: return "varray-ptr";
	}
	return "?";
}

static void put_str(struct tern_buf *out, const char *s)
{
	tern_buf_put(out, s, strlen(s));
}

static void put_fmt(struct tern_buf *out, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void put_fmt(struct tern_buf *out, const char *fmt, ...)
{
	char line[600];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (n > 0)
		tern_buf_put(out, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* What one element (or a whole non-array field) is. */
static void put_element(struct tern_buf *out, const struct tern_vmstate_field *f,
			enum tern_vms_type t)
{
	put_str(out, type_name(t));
	if (t == TERN_VMS_BUFFER || t == TERN_VMS_STRING)
		put_fmt(out, " size %zu", f->size);
	else if (t == TERN_VMS_STRUCT)
		put_fmt(out, " %s", f->sub->name);
}

static void put_field(struct tern_buf *out, unsigned indent, const struct tern_vmstate_field *f)
{
	for (unsigned i = 0; i <= indent; i++)
		put_str(out, "\t");
	put_fmt(out, "field %s ", f->name);
	switch (f->type) {
	case TERN_VMS_ARRAY:
	case TERN_VMS_VARRAY:
	case TERN_VMS_VARRAY_PTR:
		put_fmt(out, "%s %s%u of ", type_name(f->type), f->type == TERN_VMS_ARRAY ? "" : "max ",
			f->count);
		put_element(out, f, f->elem);
		break;
	case TERN_VMS_HASH:
		put_fmt(out, "hash max %u key %s value %s", f->hash->max_entries, f->hash->key->name,
			f->hash->value->name);
		break;
	default:
		put_element(out, f, f->type);
	}
	if (f->since != 0)
		put_fmt(out, " since %u", f->since);
	put_str(out, "\n");
}

int tern_vmstate_describe(const struct tern_vmstate_desc *d, unsigned indent,
			  struct tern_buf *out, struct tern_error *err)
{
	struct reached r;
	int rc = check_reached(&r, d, err);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < r.n; i++) {
		const struct tern_vmstate_desc *e = r.desc[i];
		for (unsigned k = 0; k < indent; k++)
			put_str(out, "\t");
		put_fmt(out, "desc %s version %u min %u\n", e->name, e->version, e->min_version);
		for (const struct tern_vmstate_field *f = e->fields; f && f->name; f++)
			put_field(out, indent, f);
		for (const struct tern_vmstate_subsection *s = e->subsections; s && s->desc; s++) {
			for (unsigned k = 0; k <= indent; k++)
				put_str(out, "\t");
			put_fmt(out, "subsection %s\n", s->desc->name);
		}
	}
	return out->failed ? tern_errorf(err, -ENOMEM, "out of memory describing %s", d->name) : 0;
}
