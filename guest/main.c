/* Ring 3 entry: parse the command line, lay out the working set, run the
 * workload, verify, and leave through the exit port with a status. */
#include "console.h"
#include "guest.h"
#include "io.h"
#include "run.h"
#include "timer.h"

static struct run run;

static int layout(struct run *r)
{
	const uint64_t total = r->boot->window_bytes / PAGE_SIZE;
	uint64_t pages = r->p.ws_bytes / PAGE_SIZE;
	if (r->p.ws_bytes == 0) /* all memory: pages + version array fill the window */
		pages = total - (total * sizeof(uint32_t) + PAGE_SIZE - 1) / PAGE_SIZE;
	uint64_t meta = (pages * sizeof(uint32_t) + PAGE_SIZE - 1) / PAGE_SIZE;
	if (pages == 0 || pages + meta > total) {
		console_printf("tern-guest: working set of %llu MiB does not fit: %llu MiB usable "
			       "(give the VM more memory or lower ws=)\n",
			       (unsigned long long)(r->p.ws_bytes >> 20),
			       (unsigned long long)((total * PAGE_SIZE) >> 20));
		return -1;
	}
	r->version = (uint32_t *)WINDOW_VA;
	r->ws_offset = meta * PAGE_SIZE;
	r->ws = (uint8_t *)(WINDOW_VA + r->ws_offset);
	r->pages = pages;
	r->hot_pages = pages * r->p.hot_percent / 100;
	if (r->hot_pages == 0)
		r->hot_pages = 1;
	r->rng = r->p.seed;
	/* RAM starts zeroed under tern and QEMU: version 0 means a zero page. */
	memset(r->version, 0, pages * sizeof(uint32_t));
	return 0;
}

_Noreturn void user_main(struct boot_info *info)
{
	console_init();
	console_printf("tern-guest: ring 3 reached\n");
	run.boot = info;
	if (params_parse(info->cmdline, &run.p) != 0)
		guest_exit(GUEST_EXIT_BAD_ARGS);
	pattern_init(&run.pattern, run.p.seed, run.p.bytes);
	if (layout(&run) != 0)
		guest_exit(GUEST_EXIT_NO_MEMORY);
	timer_init();
	console_printf("tern-guest: start workload=%s ws_pages=%llu bytes=%u rate=%llu writes=%llu "
		       "seconds=%llu seed=%llu ram_mib=%llu ws_gpa=0x%llx tsc_mhz=%llu\n",
		       workload_name(run.p.workload), (unsigned long long)run.pages,
		       run.pattern.words * 8, (unsigned long long)run.p.rate,
		       (unsigned long long)run.p.writes, (unsigned long long)run.p.seconds,
		       (unsigned long long)run.p.seed, (unsigned long long)(info->ram_bytes >> 20),
		       (unsigned long long)window_phys(info, run.ws_offset),
		       (unsigned long long)(tsc_hz() / 1000000));
	if (run.p.fill)
		fill_working_set(&run);
	run_workload(&run);
	uint64_t ms = (run.end_tsc - run.start_tsc) * 1000 / tsc_hz();
	console_printf("tern-guest: done workload=%s writes=%llu elapsed_ms=%llu rate=%llu\n",
		       workload_name(run.p.workload), (unsigned long long)run.writes,
		       (unsigned long long)ms,
		       (unsigned long long)(ms ? run.writes * 1000 / ms : 0));
	uint64_t bad = run.p.verify_at_end ? verify_memory(&run, "end") : 0;
	guest_exit(bad ? GUEST_EXIT_VERIFY_FAILED : GUEST_EXIT_OK);
}
