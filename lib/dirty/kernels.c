/* Portable kernels and the run-time choice among the kernel tables. */
#include "kernels.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "tern/dirty.h"

static size_t emit_portable(const uint64_t *words, size_t n, uint64_t base, uint64_t *out)
{
	/* Zero words go through the same code (storing nothing that counts):
	 * no branch on data that the predictor cannot learn. */
	uint64_t *o = out;
	for (size_t i = 0; i < n; i++)
		o = dirty_emit_word(words[i], base + 64 * i, o);
	return (size_t)(o - out);
}

static size_t emit_take_portable(uint64_t *words, size_t n, uint64_t base, uint64_t *out,
				 int exclusive)
{
	uint64_t *o = out;
	for (size_t i = 0; i < n; i++) {
		if (words[i] == 0)
			continue;
		uint64_t w = dirty_take_word(&words[i], exclusive);
		if (w)
			o = dirty_emit_word(w, base + 64 * i, o);
	}
	return (size_t)(o - out);
}

static size_t emit_indexed_portable(const uint64_t *words, const uint64_t *idx, size_t n,
				    uint64_t *out)
{
	return dirty_emit_indexed(words, idx, n, out);
}

static size_t take_indexed_portable(uint64_t *words, const uint64_t *idx, size_t n, uint64_t *out,
				    int exclusive)
{
	return dirty_take_indexed(words, idx, n, out, exclusive);
}

static size_t emit_values_portable(const uint64_t *vals, const uint64_t *idx, size_t n,
				   uint64_t *out)
{
	return dirty_emit_values(vals, idx, n, out);
}

static size_t gather_run_portable(const uint64_t *words, const uint64_t *idx, size_t n,
				  uint64_t *vals, size_t cap, unsigned dense, size_t *bits)
{
	return dirty_gather_run(words, idx, n, vals, cap, dense, bits);
}

static void stream_copy_portable(uint64_t *dst, const uint64_t *src, size_t n)
{
	memcpy(dst, src, n * sizeof *dst);
}

static uint64_t popcount_portable(const uint64_t *words, size_t n)
{
	uint64_t c = 0;
	for (size_t i = 0; i < n; i++)
		c += dirty_popcount(words[i]);
	return c;
}

static size_t next_nonzero_portable(const uint64_t *words, size_t from, size_t n)
{
	while (from < n && words[from] == 0)
		from++;
	return from;
}

static int always(void)
{
	return 1;
}

const struct dirty_kernels dirty_kernels_portable = {
	.name = "portable",
	.emit = emit_portable,
	.emit_take = emit_take_portable,
	.emit_values = emit_values_portable,
	.gather_run = gather_run_portable,
	.stream_copy = stream_copy_portable,
	.emit_indexed = emit_indexed_portable,
	.take_indexed = take_indexed_portable,
	.popcount = popcount_portable,
	.next_nonzero = next_nonzero_portable,
	.supported = always,
};

static const struct dirty_kernels *const all_kernels[] = {
	&dirty_kernels_avx512,
	&dirty_kernels_avx2,
	&dirty_kernels_portable,
};

int dirty_have_popcnt;

static const struct dirty_kernels *chosen;
static pthread_once_t choose_once = PTHREAD_ONCE_INIT;

static void choose(void)
{
	__builtin_cpu_init();
	dirty_have_popcnt = __builtin_cpu_supports("popcnt");
	for (size_t i = 0; i < sizeof all_kernels / sizeof all_kernels[0]; i++)
		if (all_kernels[i]->supported()) {
			__atomic_store_n(&chosen, all_kernels[i], __ATOMIC_RELEASE);
			return;
		}
}

const struct dirty_kernels *dirty_kernels(void)
{
	const struct dirty_kernels *k = __atomic_load_n(&chosen, __ATOMIC_ACQUIRE);
	if (k != NULL)
		return k;
	pthread_once(&choose_once, choose);
	return __atomic_load_n(&chosen, __ATOMIC_ACQUIRE);
}

const char *tern_dirty_kernel(void)
{
	return dirty_kernels()->name;
}

int tern_dirty_use_kernel(const char *name)
{
	dirty_kernels(); /* let the automatic choice happen first */
	for (size_t i = 0; i < sizeof all_kernels / sizeof all_kernels[0]; i++) {
		if (strcmp(all_kernels[i]->name, name) != 0)
			continue;
		if (!all_kernels[i]->supported())
			return -ENOTSUP;
		__atomic_store_n(&chosen, all_kernels[i], __ATOMIC_RELEASE);
		return 0;
	}
	return -ENOENT;
}

size_t tern_dirty_compact_bitmap(const uint64_t *words, size_t nwords, uint64_t base,
				 uint64_t *out)
{
	return dirty_kernels()->emit(words, nwords, base, out);
}
