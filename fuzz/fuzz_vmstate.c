/* libFuzzer target: vmstate objects from an untrusted stream.  A refused
 * load leaves the object untouched. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tern/vmstate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct point {
	int32_t x, y;
};

struct thing {
	uint8_t a;
	uint16_t b;
	uint64_t d;
	bool flag;
	char tag[8];
	uint32_t fixed[3];
	uint32_t npoints;
	struct point points[4];
	uint32_t extra;
};

static const struct tern_vmstate_field point_fields[] = {
	{ .name = "x", .type = TERN_VMS_I32, .offset = offsetof(struct point, x) },
	{ .name = "y", .type = TERN_VMS_I32, .offset = offsetof(struct point, y), .since = 2 },
	{ 0 },
};

static const struct tern_vmstate_desc point_desc = {
	.name = "point", .size = sizeof(struct point), .version = 2, .min_version = 1,
	.fields = point_fields,
};

static const struct tern_vmstate_field extra_fields[] = {
	{ .name = "extra", .type = TERN_VMS_U32, .offset = offsetof(struct thing, extra) },
	{ 0 },
};

static const struct tern_vmstate_desc extra_desc = {
	.name = "thing/extra", .size = sizeof(struct thing), .version = 1, .min_version = 1,
	.fields = extra_fields,
};

static const struct tern_vmstate_subsection subs[] = { { &extra_desc, NULL }, { 0 } };

static const struct tern_vmstate_field thing_fields[] = {
	{ .name = "a", .type = TERN_VMS_U8, .offset = offsetof(struct thing, a) },
	{ .name = "b", .type = TERN_VMS_U16, .offset = offsetof(struct thing, b) },
	{ .name = "d", .type = TERN_VMS_U64, .offset = offsetof(struct thing, d) },
	{ .name = "flag", .type = TERN_VMS_BOOL, .offset = offsetof(struct thing, flag) },
	{ .name = "tag", .type = TERN_VMS_BUFFER, .offset = offsetof(struct thing, tag), .size = 8 },
	{ .name = "fixed", .type = TERN_VMS_ARRAY, .offset = offsetof(struct thing, fixed),
	  .count = 3, .elem = TERN_VMS_U32 },
	{ .name = "points", .type = TERN_VMS_VARRAY, .offset = offsetof(struct thing, points),
	  .count = 4, .count_offset = offsetof(struct thing, npoints), .elem = TERN_VMS_STRUCT,
	  .size = sizeof(struct point), .sub = &point_desc },
	{ 0 },
};

static const struct tern_vmstate_desc thing_desc = {
	.name = "thing", .size = sizeof(struct thing), .version = 1, .min_version = 1,
	.fields = thing_fields, .subsections = subs,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct thing t, before;
	memset(&t, 0x5a, sizeof t);
	before = t;
	struct tern_error err;
	if (tern_vmstate_load(&thing_desc, &t, data, size, &err) != 0) {
		if (memcmp(&t, &before, sizeof t) != 0 || err.msg[0] == '\0')
			abort();
		return 0;
	}
	if (t.npoints > 4 || (t.flag != 0 && t.flag != 1))
		abort();
	/* What loads, saves back to the same bytes. */
	struct tern_buf b = { 0 };
	if (tern_vmstate_save(&thing_desc, &t, &b) != 0)
		abort();
	tern_buf_free(&b);
	return 0;
}
