/* A section decoded by its registered type; see decode_section.h. */
#include "decode_section.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "machine/vm_state.h"
#include "tern/vmstate.h"

/* Whether a loaded object saves back to its input: every description
 * reached from d loads one version only and has no subsections. */
static int round_trips(const struct tern_vmstate_desc *d, unsigned depth)
{
	if (depth > 16 || d->min_version != d->version ||
	    (d->subsections != NULL && d->subsections[0].desc != NULL))
		return 0;
	for (const struct tern_vmstate_field *f = d->fields; f && f->name; f++) {
		if (f->type == TERN_VMS_CUSTOM)
			return 0;
		if (f->sub != NULL && !round_trips(f->sub, depth + 1))
			return 0;
		if (f->type == TERN_VMS_HASH)
			return 0; /* a table may walk in another order than it was loaded */
	}
	return 1;
}

int fuzz_decode_section(const char *name, const uint8_t *data, size_t len,
			struct tern_error *err)
{
	const struct vm_state_type *t = vm_state_type_find(name);
	if (t == NULL)
		return tern_errorf(err, -ENOENT, "state '%s' is not one tern knows", name);
	void *obj = calloc(1, t->desc->size);
	if (obj == NULL)
		return -ENOMEM;
	int rc = tern_vmstate_load(t->desc, obj, data, len, err);
	if (rc == 0 && round_trips(t->desc, 0)) {
		struct tern_buf again = { 0 };
		if (tern_vmstate_save(t->desc, obj, &again) == 0 &&
		    (again.len != len || memcmp(again.data, data, len) != 0))
			abort(); /* the loader took bytes its saver would not write */
		tern_buf_free(&again);
	}
	if (t->release != NULL)
		t->release(obj);
	free(obj);
	return rc;
}
