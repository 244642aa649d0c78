/* Commands read from the serial port, one per line. */
#include "run.h"

#include "console.h"
#include "io.h"

static int line_is(const struct run *r, const char *cmd)
{
	size_t n = strlen(cmd);
	return r->line_len == n && memcmp(r->line, cmd, n) == 0;
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
	} else if (line_is(r, "help")) {
		console_printf("tern-guest: commands: verify, status, stop, help\n");
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
