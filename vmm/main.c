/* tern's command-line entry point: dispatch to the commands. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "machine/builtin_guest.h"
#include "cli.h"
#include "cpr/cpr.h"
#include "migrate_main.h"
#include "qmp_main.h"
#include "run.h"
#include "version.h"

static const char usage[] =
	"usage: tern COMMAND [options]\n"
	"\n"
	"tern is a KVM virtual machine monitor built for live migration, live\n"
	"update and disk snapshots.\n"
	"\n"
	"commands:\n"
	"  run [options]         boot a guest (the built-in one by default); see tern run --help\n"
	"  migrate [options] URI live-migrate a running VM, showing progress; see\n"
	"                        tern migrate --help\n"
	"  qmp unix:PATH COMMAND [ARGS]\n"
	"                        run one QMP command on a running VM\n"
	"  guest-image FILE      write the built-in guest, a multiboot ELF32 kernel that also\n"
	"                        boots with qemu-system-x86_64 -kernel FILE\n"
	"  --version             print the version\n"
	"  --help                this text\n";

static int write_guest_image(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "tern: cannot create %s: %s\n", path, strerror(errno));
		return 1;
	}
	size_t len = tern_builtin_guest_size(), done = 0;
	while (done < len) {
		ssize_t n = write(fd, tern_builtin_guest + done, len - done);
		if (n <= 0) {
			fprintf(stderr, "tern: writing %s: %s\n", path, strerror(errno));
			close(fd);
			return 1;
		}
		done += (size_t)n;
	}
	if (close(fd) < 0) {
		fprintf(stderr, "tern: writing %s: %s\n", path, strerror(errno));
		return 1;
	}
	return 0;
}

/* The new program of a cpr-exec: the live update's state comes before the
 * command line, and a command line it cannot run (not `tern run`, or an
 * option it refuses) sends the guest back to the previous binary rather
 * than leaving it to no one. */
static int run_for_update(int argc, char **argv)
{
	struct run_options o;
	struct tern_error err = { .msg = "" };
	int rc = 0;
	if (argc < 2 || strcmp(argv[1], "run") != 0)
		rc = tern_errorf(&err, -EINVAL, "it was started as `tern%s%s`, not `tern run`",
				 argc < 2 ? "" : " ", argc < 2 ? "" : argv[1]);
	else if ((rc = cli_parse_run(argc - 1, argv + 1, &o, &err)) < 0)
		tern_error_prefix(&err, "tern run");
	else if (o.help)
		rc = tern_errorf(&err, -EINVAL, "it was asked for `tern run --help`");
	if (rc < 0) {
		memset(&o, 0, sizeof o);
		o.cpr_refusal = err.msg;
	}
	return run_main(&o);
}

int main(int argc, char **argv)
{
	if (cpr_exec_pending())
		return run_for_update(argc, argv);
	if (argc < 2) {
		fputs(usage, stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
		fputs(usage, stdout);
		return 0;
	}
	if (strcmp(cmd, "--version") == 0) {
		printf("tern %s\n", TERN_VERSION);
		return 0;
	}
	if (strcmp(cmd, "run") == 0) {
		struct run_options o;
		struct tern_error err;
		if (cli_parse_run(argc - 1, argv + 1, &o, &err) < 0) {
			fprintf(stderr, "tern run: %s\n", err.msg);
			return 2;
		}
		if (o.help) {
			fputs(cli_run_usage, stdout);
			return 0;
		}
		return run_main(&o);
	}
	if (strcmp(cmd, "migrate") == 0)
		return migrate_main(argc - 1, argv + 1);
	if (strcmp(cmd, "qmp") == 0)
		return qmp_main(argc - 1, argv + 1);
	if (strcmp(cmd, "guest-image") == 0) {
		if (argc != 3) {
			fprintf(stderr, "usage: tern guest-image FILE\n");
			return 2;
		}
		return write_guest_image(argv[2]);
	}
	fprintf(stderr, "tern: unknown command '%s' (see tern --help)\n", cmd);
	return 2;
}
