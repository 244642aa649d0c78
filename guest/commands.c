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
	} else if (line_is(r, "help")) {
		console_printf("tern-guest: commands: verify, status, stop, "
			       "write FIRST COUNT STRIDE, help\n");
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
