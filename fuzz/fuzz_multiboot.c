/* libFuzzer target: multiboot kernel images (untrusted files). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tern/multiboot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tern_multiboot_image img;
	struct tern_error err;
	if (tern_multiboot_parse(data, size, &img, &err) != 0) {
		if (strlen(err.msg) == 0)
			abort(); /* every refusal says why */
		return 0;
	}
	/* What the parser accepts, a loader can copy without checks. */
	int entry_inside = 0;
	for (unsigned i = 0; i < img.segments; i++) {
		const struct tern_multiboot_segment *s = &img.segment[i];
		if ((uint64_t)s->file_offset + s->file_size > size || s->file_size > s->mem_size ||
		    (uint64_t)s->addr + s->mem_size > UINT32_MAX)
			abort();
		if (img.entry >= s->addr && img.entry - s->addr < s->mem_size)
			entry_inside = 1;
		for (unsigned j = 0; j < i; j++) {
			const struct tern_multiboot_segment *o = &img.segment[j];
			if (s->mem_size && o->mem_size && s->addr < o->addr + o->mem_size &&
			    o->addr < s->addr + s->mem_size)
				abort();
		}
	}
	if (!entry_inside)
		abort();
	return 0;
}
