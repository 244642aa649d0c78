/* The machine's state registry; see vm_state.h. */
#include "machine/vm_state.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ types */

/* The linker gathers every VM_STATE_TYPE into this section; weak, so a
 * program with none still links. */
extern const struct vm_state_type *const __start_tern_vm_state_types[] __attribute__((weak));
extern const struct vm_state_type *const __stop_tern_vm_state_types[] __attribute__((weak));

const struct vm_state_type *vm_state_types_next(size_t *cursor)
{
	const struct vm_state_type *const *start = __start_tern_vm_state_types;
	size_t n = (size_t)(__stop_tern_vm_state_types - start);
	return start != NULL && *cursor < n ? start[(*cursor)++] : NULL;
}

const struct vm_state_type *vm_state_type_find(const char *name)
{
	size_t cursor = 0;
	for (const struct vm_state_type *t; (t = vm_state_types_next(&cursor)) != NULL;) {
		size_t n = strlen(t->name);
		if (strncmp(name, t->name, n) != 0)
			continue;
		if (!(t->flags & VM_STATE_NUMBERED) && name[n] == '\0')
			return t;
		if ((t->flags & VM_STATE_NUMBERED) && name[n] == '/' && name[n + 1] != '\0' &&
		    strspn(name + n + 1, "0123456789") == strlen(name + n + 1))
			return t;
	}
	return NULL;
}

/* ------------------------------------------------------------ entries */

int vm_state_register(struct vm_state_registry *reg, const struct vm_state_type *type,
		      int instance, void *holder, struct tern_error *err)
{
	if ((instance >= 0) != ((type->flags & VM_STATE_NUMBERED) != 0))
		return tern_errorf(err, -EINVAL, "state %s is %s, registered %s an instance number",
				   type->name, type->flags & VM_STATE_NUMBERED ? "numbered" : "single",
				   instance >= 0 ? "with" : "without");
	char name[VM_STATE_NAME_MAX];
	int n = instance < 0 ? snprintf(name, sizeof name, "%s", type->name)
			     : snprintf(name, sizeof name, "%s/%d", type->name, instance);
	if (n <= 0 || (size_t)n >= sizeof name)
		return tern_errorf(err, -ENAMETOOLONG, "state name %s is too long", type->name);
	if (vm_state_find(reg, name) != NULL)
		return tern_errorf(err, -EEXIST, "state %s is registered twice", name);
	if (tern_array_grow(&reg->entry, &reg->cap, reg->count, sizeof *reg->entry, 16) < 0)
		return tern_errorf(err, -ENOMEM, "out of memory");
	struct vm_state_entry *e = &reg->entry[reg->count++];
	memcpy(e->name, name, (size_t)n + 1);
	e->type = type;
	e->holder = holder;
	return 0;
}

void vm_state_registry_free(struct vm_state_registry *reg)
{
	free(reg->entry);
	memset(reg, 0, sizeof *reg);
}

const struct vm_state_entry *vm_state_find(const struct vm_state_registry *reg, const char *name)
{
	for (unsigned i = 0; i < reg->count; i++)
		if (strcmp(reg->entry[i].name, name) == 0)
			return &reg->entry[i];
	return NULL;
}

const char *vm_carrier_name(enum vm_carrier carrier)
{
	switch (carrier) {
	case VM_CARRY_MIGRATION: return "a live migration";
	case VM_CARRY_FILE: return "a migration to a file";
	case VM_CARRY_CPR_EXEC: return "a live update by cpr-exec";
	case VM_CARRY_CPR_TRANSFER: return "a live update by cpr-transfer";
	}
	return "this mode";
}

/* Does carrier take e along (1), leave it with nothing lost (0), or must
 * it refuse (-1, with why)? */
static int carried(const struct vm_state_entry *e, enum vm_carrier carrier, const char **why)
{
	if (e->type->carry & carrier)
		return 1;
	*why = e->type->blocked != NULL ? e->type->blocked(e->holder, carrier) : e->type->why_not;
	if (*why == NULL && e->type->blocked == NULL)
		*why = "it cannot be carried that way";
	return *why == NULL ? 0 : -1;
}

int vm_state_check(const struct vm_state_registry *reg, enum vm_carrier carrier,
		   struct tern_error *err)
{
	for (unsigned i = 0; i < reg->count; i++) {
		const char *why;
		if (carried(&reg->entry[i], carrier, &why) < 0)
			return tern_errorf(err, -EOPNOTSUPP, "%s cannot carry %s: %s",
					   vm_carrier_name(carrier), reg->entry[i].name, why);
	}
	return 0;
}

/* ------------------------------------------------------------ saving */

int vm_state_save_one(const struct vm_state_type *t, void *holder, struct tern_buf *out,
		      struct tern_error *err)
{
	void *obj = calloc(1, t->desc->size);
	if (obj == NULL)
		return tern_errorf(err, -ENOMEM, "out of memory saving %s", t->name);
	int rc = t->save(holder, obj, err);
	if (rc == 0 && (rc = tern_vmstate_save(t->desc, obj, out)) < 0)
		tern_errorf(err, rc, "saving %s: %s", t->name, strerror(-rc));
	if (t->release != NULL)
		t->release(obj);
	free(obj);
	return rc;
}

/* Every holder first: finishing one device's work may change another's
 * state (a completion raises an interrupt in the irqchip). */
int vm_state_quiesce(const struct vm_state_registry *reg, unsigned carriers,
		     struct tern_error *err)
{
	for (unsigned i = 0; i < reg->count; i++) {
		const struct vm_state_entry *e = &reg->entry[i];
		int rc = e->type->quiesce != NULL && (e->type->carry & carriers)
				 ? e->type->quiesce(e->holder, err)
				 : 0;
		if (rc < 0)
			return rc;
	}
	return 0;
}

int vm_state_save(const struct vm_state_registry *reg, enum vm_carrier carrier,
		  enum vm_state_part part, vm_state_sink sink, void *ctx, struct tern_error *err)
{
	int rc = vm_state_check(reg, carrier, err);
	if (rc == 0 && part != VM_STATE_PART_EARLY)
		rc = vm_state_quiesce(reg, carrier, err);
	for (unsigned i = 0; i < reg->count && rc == 0; i++) {
		const struct vm_state_entry *e = &reg->entry[i];
		const char *why;
		int early = (e->type->flags & VM_STATE_EARLY) != 0;
		if ((part == VM_STATE_PART_EARLY && !early) || (part == VM_STATE_PART_REST && early) ||
		    carried(e, carrier, &why) <= 0)
			continue;
		struct tern_buf b = { 0 };
		rc = vm_state_save_one(e->type, e->holder, &b, err);
		if (rc == 0 && (rc = sink(ctx, e->name, b.data, b.len)) < 0)
			tern_errorf(err, rc, "sending state %s: %s", e->name, strerror(-rc));
		tern_buf_free(&b);
	}
	return rc;
}

static int stream_sink(void *ctx, const char *name, const uint8_t *data, size_t len)
{
	return tern_stream_section(ctx, name, data, len);
}

int vm_state_save_stream(const struct vm_state_registry *reg, enum vm_carrier carrier,
			 enum vm_state_part part, struct tern_stream_writer *w,
			 struct tern_error *err)
{
	return vm_state_save(reg, carrier, part, stream_sink, w, err);
}

/* ------------------------------------------------------------ loading */

int vm_state_in_init(struct vm_state_in *in, const struct vm_state_registry *reg,
		     enum vm_carrier carrier)
{
	memset(in, 0, sizeof *in);
	in->reg = reg;
	in->carrier = carrier;
	unsigned n = reg->count ? reg->count : 1;
	in->obj = calloc(n, sizeof *in->obj);
	in->applied = calloc(n, 1);
	if (in->obj == NULL || in->applied == NULL) {
		vm_state_in_free(in);
		return -ENOMEM;
	}
	return 0;
}

void vm_state_in_free(struct vm_state_in *in)
{
	for (unsigned i = 0; in->obj != NULL && i < in->reg->count; i++) {
		if (in->obj[i] == NULL)
			continue;
		if (in->reg->entry[i].type->release != NULL)
			in->reg->entry[i].type->release(in->obj[i]);
		free(in->obj[i]);
	}
	free(in->obj);
	free(in->applied);
	in->obj = NULL;
	in->applied = NULL;
}

int vm_state_load_one(const struct vm_state_type *t, void *holder, const uint8_t *data,
		      size_t len, struct tern_error *err)
{
	void *obj = calloc(1, t->desc->size);
	if (obj == NULL)
		return tern_errorf(err, -ENOMEM, "out of memory");
	int rc = tern_vmstate_load(t->desc, obj, data, len, err);
	if (rc == 0)
		rc = t->load(holder, obj, err);
	if (t->release != NULL)
		t->release(obj);
	free(obj);
	return rc;
}

/* A section with no entry: say what the two machines differ in. */
static int unknown_section(const struct vm_state_in *in, const char *name,
			   struct tern_error *err)
{
	size_t cursor = 0;
	for (const struct vm_state_type *t; (t = vm_state_types_next(&cursor)) != NULL;) {
		size_t n = strlen(t->name);
		if (strncmp(name, t->name, n) != 0 || (name[n] != '\0' && name[n] != '/'))
			continue;
		unsigned have = 0;
		for (unsigned i = 0; i < in->reg->count; i++)
			have += in->reg->entry[i].type == t;
		if (have == 0)
			return tern_errorf(err, -EINVAL, "state %s: the source has a device of "
					   "kind %s and this machine none; start the destination with "
					   "the source's devices", name, t->name);
		return tern_errorf(err, -EINVAL, "state %s: this machine has %u %s%s, not that "
				   "one; start the destination with the source's devices and "
				   "--vcpus", name, have, t->name, have == 1 ? "" : "s");
	}
	return tern_errorf(err, -EINVAL, "state '%s' is not one tern knows", name);
}

int vm_state_load_section(struct vm_state_in *in, const char *name, const uint8_t *data,
			  size_t len, struct tern_error *err)
{
	const struct vm_state_entry *e = vm_state_find(in->reg, name);
	if (e == NULL)
		return unknown_section(in, name, err);
	unsigned i = (unsigned)(e - in->reg->entry);
	const struct vm_state_type *t = e->type;
	const char *why;
	if (carried(e, in->carrier, &why) <= 0)
		return tern_errorf(err, -EINVAL, "state %s is not carried by %s", name,
				   vm_carrier_name(in->carrier));
	if (in->obj[i] != NULL)
		return tern_errorf(err, -EINVAL, "state %s arrived twice", name);
	void *obj = calloc(1, t->desc->size);
	if (obj == NULL)
		return tern_errorf(err, -ENOMEM, "out of memory");
	int rc = tern_vmstate_load(t->desc, obj, data, len, err);
	/* The shape is checked at once, before the RAM that follows it. */
	if (rc == 0 && (t->flags & VM_STATE_EARLY) && (rc = t->load(e->holder, obj, err)) == 0)
		in->applied[i] = 1;
	if (rc < 0) {
		tern_error_prefix(err, "state %s", name);
		if (t->release != NULL)
			t->release(obj);
		free(obj);
		return rc;
	}
	in->obj[i] = obj;
	return 0;
}

int vm_state_apply(struct vm_state_in *in, struct tern_error *err)
{
	const struct vm_state_registry *reg = in->reg;
	for (unsigned i = 0; i < reg->count; i++) {
		const struct vm_state_entry *e = &reg->entry[i];
		const char *why;
		if (in->obj[i] == NULL && !(e->type->flags & VM_STATE_OPTIONAL) &&
		    carried(e, in->carrier, &why) > 0)
			return tern_errorf(err, -EINVAL, "the stream ended without the %s state, "
					   "which this machine has and the source did not send (it "
					   "has no such device, or is a tern that does not carry "
					   "it); start the destination with the source's devices",
					   e->name);
	}
	int rc = 0;
	for (unsigned i = 0; i < reg->count && rc == 0; i++) {
		const struct vm_state_entry *e = &reg->entry[i];
		if (in->obj[i] != NULL && !in->applied[i]) {
			rc = e->type->load(e->holder, in->obj[i], err);
			in->applied[i] = rc == 0;
		}
	}
	for (unsigned i = 0; i < reg->count && rc == 0; i++) {
		const struct vm_state_entry *e = &reg->entry[i];
		if (in->obj[i] != NULL && e->type->finish != NULL)
			rc = e->type->finish(e->holder, in->obj[i], err);
	}
	return rc;
}
