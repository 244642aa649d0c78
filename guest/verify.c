/* Whole-memory verification against the content model, and the checksum. */
#include "run.h"

#include "console.h"
#include "io.h"

uint64_t verify_memory(struct run *r, const char *why)
{
	uint64_t hash = r->p.seed;
	uint64_t bad_pages = 0, written = 0;
	for (uint64_t page = 0; page < r->pages; page++) {
		const uint64_t *src = (const uint64_t *)(r->ws + page * PAGE_SIZE);
		uint32_t v = r->version[page];
		written += v != 0;
		int word = pattern_check(&r->pattern, src, page, v, &hash);
		if (word < 0)
			continue;
		if (bad_pages++ == 0) {
			uint64_t off = r->ws_offset + page * PAGE_SIZE + (uint64_t)word * 8;
			console_printf("tern-guest: VERIFY FAILED (%s) first bad page=%llu gpa=0x%llx "
				       "version=%u word=%d found=0x%llx\n",
				       why, (unsigned long long)page,
				       (unsigned long long)window_phys(r->boot, off), v, word,
				       (unsigned long long)src[word]);
		}
	}
	if (bad_pages) {
		console_printf("tern-guest: VERIFY FAILED (%s) bad_pages=%llu of %llu\n", why,
			       (unsigned long long)bad_pages, (unsigned long long)r->pages);
	} else {
		console_printf("tern-guest: verify ok (%s) pages=%llu written=%llu writes=%llu "
			       "checksum=0x%016llx\n",
			       why, (unsigned long long)r->pages, (unsigned long long)written,
			       (unsigned long long)r->writes, (unsigned long long)hash);
	}
	return bad_pages;
}
