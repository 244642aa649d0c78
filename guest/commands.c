/* Commands read from the serial port, one per line. */
#include "run.h"

#include "console.h"
#include "io.h"

static int line_is(const struct run *r, const char *cmd)
{
	size_t n = strlen(cmd);
	return r->line_len == n && memcmp(r->line, cmd, n) == 0;
}

/* Parse "write FIRST COUNT STRIDE" (decimal); 0 on success. */
static int parse_write(const struct run *r, uint64_t v[3])
{
	size_t at = 5; /* after "write" */
	for (int i = 0; i < 3; i++) {
		while (at < r->line_len && r->line[at] == ' ')
			at++;
		if (at == r->line_len || r->line[at] < '0' || r->line[at] > '9')
			return -1;
		v[i] = 0;
		while (at < r->line_len && r->line[at] >= '0' && r->line[at] <= '9')
			v[i] = v[i] * 10 + (uint64_t)(r->line[at++] - '0');
	}
	return at == r->line_len ? 0 : -1;
}

/* Write a known set of pages, so the VMM's dirty tracking can be checked:
 * pages FIRST, FIRST + STRIDE, ... (COUNT of them, modulo the working set). */
static void write_pages(struct run *r)
{
	uint64_t v[3];
	if (parse_write(r, v) != 0 || v[2] == 0) {
		console_printf("tern-guest: usage: write FIRST COUNT STRIDE\n");
		return;
	}
	for (uint64_t i = 0; i < v[1]; i++)
		write_page(r, (v[0] + i * v[2]) % r->pages);
	r->writes += v[1];
	console_printf("tern-guest: wrote %llu pages first=%llu stride=%llu\n",
		       (unsigned long long)v[1], (unsigned long long)v[0],
		       (unsigned long long)v[2]);
}

/* A decimal or 0x-hex number at *at; 0 on success. */
static int parse_number(const struct run *r, size_t *at, uint64_t *v)
{
	while (*at < r->line_len && r->line[*at] == ' ')
		(*at)++;
	int base = 10;
	if (*at + 1 < r->line_len && r->line[*at] == '0' &&
	    (r->line[*at + 1] == 'x' || r->line[*at + 1] == 'X')) {
		base = 16;
		*at += 2;
	}
	size_t start = *at;
	*v = 0;
	for (; *at < r->line_len && r->line[*at] != ' '; (*at)++) {
		char c = r->line[*at];
		unsigned d;
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (base == 16 && c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else if (base == 16 && c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A' + 10);
		else
			return -1;
		*v = *v * (uint64_t)base + d;
	}
	return *at > start ? 0 : -1;
}

/* "peek ADDR" and "poke ADDR VALUE": one 8-byte word at a guest-physical
 * address below 4 GiB (identity-mapped), so a test can see memory the VMM
 * adds, moves or makes read-only while the guest runs.  An address in no
 * memslot reads all ones; a write there, or to read-only memory, is lost. */
static void peek_poke(struct run *r, int poke)
{
	size_t at = 4;
	uint64_t addr, value = 0;
	if (parse_number(r, &at, &addr) != 0 || (poke && parse_number(r, &at, &value) != 0) ||
	    at != r->line_len || addr % 8 != 0 || addr >= (4ULL << 30)) {
		console_printf("tern-guest: usage: peek ADDR, poke ADDR VALUE (ADDR 8-byte aligned, "
			       "below 4 GiB)\n");
		return;
	}
	volatile uint64_t *word = (volatile uint64_t *)(uintptr_t)addr;
	if (poke) {
		*word = value;
		console_printf("tern-guest: poke 0x%llx done\n", (unsigned long long)addr);
	} else {
		console_printf("tern-guest: peek 0x%llx = 0x%llx\n", (unsigned long long)addr,
			       (unsigned long long)*word);
	}
}

static void execute_line(struct run *r)
{
	if (r->line_len == 0)
		return;
	if (line_is(r, "verify")) {
		verify_memory(r, "command");
	} else if (line_is(r, "status")) {
		print_status(r);
	} else if (line_is(r, "stop")) {
		console_printf("tern-guest: stopping on request\n");
		r->stop_requested = 1;
	} else if (r->line_len > 6 && memcmp(r->line, "write ", 6) == 0) {
		write_pages(r);
	} else if (r->line_len > 5 && memcmp(r->line, "peek ", 5) == 0) {
		peek_poke(r, 0);
	} else if (r->line_len > 5 && memcmp(r->line, "poke ", 5) == 0) {
		peek_poke(r, 1);
	} else if (line_is(r, "help")) {
		console_printf("tern-guest: commands: verify, status, stop, "
			       "write FIRST COUNT STRIDE, peek ADDR, poke ADDR VALUE, help\n");
	} else {
		r->line[r->line_len] = '\0';
		console_printf("tern-guest: unknown command '%s' (try: verify, status, stop, help)\n",
			       r->line);
	}
}

void poll_commands(struct run *r)
{
	int c;
	while ((c = console_poll_byte()) >= 0) {
		if (c == '\n' || c == '\r') {
			execute_line(r);
			r->line_len = 0;
		} else if (r->line_len + 1 < sizeof r->line) {
			r->line[r->line_len++] = (char)c;
		}
	}
}
