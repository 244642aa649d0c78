/*
 * libFuzzer target: a migration stream into the loader, as a destination
 * receives it from an untrusted peer.  The first byte chooses how the rest
 * is read: odd, as payloads made into well-checked frames (so the fuzzer
 * reaches the records and the state sections inside); even, as raw bytes
 * (so it reaches the frame checks).  Whatever the loader accepts must stay
 * inside the guest's RAM (AddressSanitizer watches the two small regions
 * exactly) and every state section is decoded by the registered state type
 * of its name, as a destination's registry checks it before the guest's
 * holders get it (fuzz/decode_section.h).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../harness/frames.h"
#include "../harness/memio.h"
#include "decode_section.h"
#include "tern/migration.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define LOW_PAGES 64
#define HIGH_PAGES 16

struct dest {
	uint8_t *low, *high;
	unsigned sections; /* decoded */
};

static size_t regions(void *o, struct tern_mig_region *out, size_t max)
{
	struct dest *d = o;
	if (max < 2)
		return 0;
	out[0] = (struct tern_mig_region){ 0, LOW_PAGES * 4096, d->low, NULL };
	out[1] = (struct tern_mig_region){ 4ULL << 30, HIGH_PAGES * 4096, d->high, NULL };
	return 2;
}

static int load_section(void *o, const char *name, const uint8_t *data, size_t len,
			struct tern_error *err)
{
	struct dest *d = o;
	int rc = fuzz_decode_section(name, data, len, err);
	d->sections += rc == 0;
	return rc;
}

/* Every section is in: a machine has at least its vCPU's. */
static int finish(void *o, struct tern_error *err)
{
	struct dest *d = o;
	return d->sections > 0 ? 0 : tern_errorf(err, -22, "no state");
}

static void run(void *o)
{
	(void)o;
}

static const struct tern_mig_dest_ops ops = {
	.regions = regions,
	.load_section = load_section,
	.finish = finish,
	.run = run,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	struct memio m;
	memio_init(&m);
	if (data[0] & 1)
		frames_from_payloads(&m, data + 1, size - 1);
	else
		memio_init_reader(&m, data + 1, size - 1);
	/* Exactly sized, so that a stray write is caught. */
	struct dest d = { malloc(LOW_PAGES * 4096), malloc(HIGH_PAGES * 4096) };
	memset(d.low, 0, LOW_PAGES * 4096);
	memset(d.high, 0, HIGH_PAGES * 4096);
	/* Read as a file is: it must end right after END. */
	struct tern_channel ch = { .fd = -1, .is_file = 1, .io = m.io };
	struct tern_incoming in;
	tern_incoming_init(&in, &ops, &d, &ch);
	struct tern_error err;
	tern_incoming_run(&in, &err);
	tern_incoming_destroy(&in);
	free(d.low);
	free(d.high);
	memio_free(&m);
	return 0;
}
