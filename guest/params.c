/* Parsing of the guest command line (QEMU's -append, tern's --append). */
#include "params.h"

#include <stddef.h>

#include "console.h"
#include "io.h"

static const char *const workload_names[] = {
	[WORKLOAD_IDLE] = "idle",       [WORKLOAD_RANDOM] = "random",
	[WORKLOAD_SEQUENTIAL] = "sequential", [WORKLOAD_HOTCOLD] = "hotcold",
	[WORKLOAD_SPARSE] = "sparse",
};

const char *workload_name(enum workload w)
{
	return workload_names[w];
}

static int word_equals(const char *s, size_t n, const char *lit)
{
	size_t i = 0;
	for (; i < n && lit[i] != '\0'; i++)
		if (s[i] != lit[i])
			return 0;
	return i == n && lit[i] == '\0';
}

/* Decimal with optional K/M/G/T suffix (binary multiples). */
static int parse_number(const char *s, size_t n, int allow_suffix, uint64_t *out)
{
	uint64_t v = 0;
	size_t i = 0;
	if (n == 0)
		return -1;
	for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
		uint64_t d = (uint64_t)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (i == 0)
		return -1;
	if (i < n) {
		if (!allow_suffix || i + 1 != n)
			return -1;
		unsigned shift;
		switch (s[i]) {
		case 'k': case 'K': shift = 10; break;
		case 'm': case 'M': shift = 20; break;
		case 'g': case 'G': shift = 30; break;
		case 't': case 'T': shift = 40; break;
		default: return -1;
		}
		if (v > (UINT64_MAX >> shift))
			return -1;
		v <<= shift;
	}
	*out = v;
	return 0;
}

static int bad(const char *key, size_t klen, const char *why)
{
	char k[64];
	size_t n = klen < sizeof k - 1 ? klen : sizeof k - 1;
	memcpy(k, key, n);
	k[n] = '\0';
	console_printf("tern-guest: bad argument '%s': %s\n", k, why);
	return -1;
}

static int set_param(struct params *p, const char *key, size_t klen, const char *val, size_t vlen,
		     int *bytes_given)
{
	uint64_t v;
	if (word_equals(key, klen, "workload")) {
		for (unsigned w = 0; w < sizeof workload_names / sizeof workload_names[0]; w++)
			if (word_equals(val, vlen, workload_names[w])) {
				p->workload = (enum workload)w;
				return 0;
			}
		return bad(key, klen, "unknown workload (idle, random, sequential, hotcold, sparse)");
	}
	int suffix = word_equals(key, klen, "ws");
	if (parse_number(val, vlen, suffix, &v) != 0)
		return bad(key, klen, suffix ? "expected a size such as 256M" : "expected a number");
	if (suffix) {
		p->ws_bytes = v;
	} else if (word_equals(key, klen, "bytes")) {
		if (v < 1 || v > 4096)
			return bad(key, klen, "bytes per page write must be 1..4096");
		p->bytes = (uint32_t)v;
		*bytes_given = 1;
	} else if (word_equals(key, klen, "rate")) {
		p->rate = v;
	} else if (word_equals(key, klen, "writes")) {
		p->writes = v;
	} else if (word_equals(key, klen, "seconds")) {
		p->seconds = v;
	} else if (word_equals(key, klen, "seed")) {
		p->seed = v;
	} else if (word_equals(key, klen, "hot")) {
		if (v < 1 || v > 100)
			return bad(key, klen, "hot must be a percentage 1..100");
		p->hot_percent = (uint32_t)v;
	} else if (word_equals(key, klen, "hotshare")) {
		if (v > 100)
			return bad(key, klen, "hotshare must be a percentage 0..100");
		p->hot_share = (uint32_t)v;
	} else if (word_equals(key, klen, "report")) {
		p->report_seconds = (uint32_t)v;
	} else if (word_equals(key, klen, "verify")) {
		p->verify_at_end = v != 0;
	} else if (word_equals(key, klen, "fill")) {
		p->fill = v != 0;
	} else {
		return bad(key, klen, "unknown parameter");
	}
	return 0;
}

int params_parse(const char *cmdline, struct params *p)
{
	*p = (struct params){
		.workload = WORKLOAD_RANDOM,
		.ws_bytes = 64ULL << 20,
		.bytes = 4096,
		.seed = 1,
		.hot_percent = 10,
		.hot_share = 90,
		.verify_at_end = 1,
	};
	int bytes_given = 0;
	const char *s = cmdline;
	while (*s != '\0') {
		while (*s == ' ')
			s++;
		const char *word = s;
		while (*s != '\0' && *s != ' ')
			s++;
		size_t len = (size_t)(s - word);
		size_t eq = 0;
		while (eq < len && word[eq] != '=')
			eq++;
		/* Words without '=' are the loader's (QEMU passes the kernel path). */
		if (len == 0 || eq == len)
			continue;
		if (set_param(p, word, eq, word + eq + 1, len - eq - 1, &bytes_given) != 0)
			return -1;
	}
	if (p->workload == WORKLOAD_SPARSE && !bytes_given)
		p->bytes = 64;
	return 0;
}
