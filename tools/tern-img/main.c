/*
 * tern-img: create, inspect, check, snapshot and convert qcow2 images.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "img.h"

static const char usage[] =
	"usage: tern-img COMMAND [options]\n"
	"\n"
	"  create [-f qcow2] [-o OPTIONS] [-b BACKING [-F FMT]] FILE [SIZE]\n"
	"      OPTIONS: cluster_size=, refcount_bits=, preallocation=off|metadata,\n"
	"               lazy_refcounts=on|off, compression_type=zlib|zstd, compat=1.1\n"
	"  info [--backing-chain] [--output=human|json] FILE\n"
	"  map [--output=human|json] FILE\n"
	"  check [-r leaks|all] [--output=human|json] FILE\n"
	"  snapshot [-q] -c NAME | -l | -a NAME | -d NAME FILE\n"
	"  convert [-p] [-f FMT] [-O FMT] [-o OPTIONS] SOURCE DEST\n"
	"      FMT: qcow2 or raw\n";

int img_usage(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "tern-img: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n%s", usage);
	va_end(ap);
	return 1;
}

int img_fail(const char *what, const struct tern_error *err)
{
	fprintf(stderr, "tern-img: %s: %s\n", what, err->msg);
	return 1;
}

int img_open(const char *path, bool writable, bool backing, struct tern_qcow2 **q)
{
	struct tern_error err = { { 0 } };
	struct tern_qcow2_open_opts o = { .writable = writable, .no_backing = !backing };
	if (tern_qcow2_open(path, &o, q, &err) < 0)
		return img_fail(path, &err);
	return 0;
}

void img_progress(bool enabled, double fraction)
{
	if (enabled)
		fprintf(stderr, "    (%.2f/100%%)\r", fraction * 100.0);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return img_usage("no command given");
	const char *cmd = argv[1];
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} commands[] = {
		{ "create", img_create }, { "info", img_info }, { "map", img_map },
		{ "check", img_check }, { "snapshot", img_snapshot }, { "convert", img_convert },
	};
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		fputs(usage, stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(cmd, commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	return img_usage("unknown command '%s'", cmd);
}
