/* Option parsing for `tern run`; see cli.h. */
#include "cli.h"
#include "devices/ioeventfd_bank.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "tern/parse.h"

#define DEFAULT_MEMORY (512ULL << 20)

const char cli_run_usage[] =
	"usage: tern run [options]\n"
	"\n"
	"Boot a multiboot kernel (by default tern's built-in guest) on KVM.\n"
	"\n"
	"  -m, --memory SIZE      guest RAM; K, M, G, T suffixes, plain numbers are MiB\n"
	"                         (default 512M)\n"
	"      --vcpus N          number of vCPUs (default 1)\n"
	"      --memslots N       split guest RAM into N KVM memslots (default: one per GiB)\n"
	"      --mem-prealloc     allocate all guest RAM at start instead of on first touch\n"
	"      --dirty-tracking log|ring\n"
	"                         how KVM reports written pages: per-memslot dirty log\n"
	"                         (default) or per-vCPU dirty ring\n"
	"      --dirty-ring-size N  entries per vCPU ring, a power of two (default 4096)\n"
	"      --kernel FILE      multiboot kernel to boot (default: the built-in guest)\n"
	"      --append ARGS      kernel command line, as qemu-system-x86_64 -append\n"
	"  -w, --workload NAME    built-in guest workload: idle, random, sequential,\n"
	"                         hotcold, sparse (adds workload=NAME to the command line)\n"
	"      --serial SPEC      COM1 backend: stdio (default), file:PATH,\n"
	"                         unix:PATH,server[,wait=off], null\n"
	"      --qmp unix:PATH    QMP server on a unix socket\n"
	"  -S, --paused           start with the vCPUs stopped (resume with QMP cont)\n"
	"      --device ioeventfd-bank,count=N\n"
	"                         N doorbells, each an eventfd KVM signals on a guest\n"
	"                         write to 0xe0000000 + 8 i (holds N fds)\n"
	"      --drive file=PATH[,format=raw|qcow2][,cache=writeback|none]\n"
	"              [,readonly=on|off][,id=NAME]\n"
	"                         a virtio-blk-pci disk (--device virtio-blk-pci,...)\n"
	"      --incoming URI     boot nothing: wait for a migration on URI (tcp:HOST:PORT,\n"
	"                         unix:PATH, file:PATH, fd:N), then run the guest it\n"
	"                         brings; 'defer' waits for QMP migrate-incoming;\n"
	"                         cpr:unix:PATH waits for a live update (cpr-transfer)\n"
	"                         and takes the whole machine from it\n"
	"      --incoming-lazy    do not allocate guest RAM ahead of an incoming\n"
	"                         migration (by default it is, in the background, as\n"
	"                         the stream will write it; lazy saves memory for\n"
	"                         guests that use little of theirs)\n"
	"  -h, --help             this text\n"
	"\n"
	"Built-in guest parameters (in --append): ws=SIZE working set (default 64M,\n"
	"0 = all memory), bytes=N written per page write (default 4096, sparse 64),\n"
	"rate=N page writes per second (0 = unlimited), writes=N or seconds=N run\n"
	"length (neither: until the 'stop' serial command), seed=N, hot=PCT and\n"
	"hotshare=PCT (hotcold), report=SECONDS progress lines, verify=0|1, fill=1\n"
	"(write the whole working set once first).\n"
	"\n"
	"Exit status: the guest's exit-port value, 0 after QMP quit, 128+N after\n"
	"signal N, 125 when the VM could not be started (or an incoming migration\n"
	"failed), 126 when the guest crashed.\n";

static const char *const workloads[] = { "idle", "random", "sequential", "hotcold", "sparse" };

int cli_known_workload(const char *name)
{
	for (unsigned i = 0; i < sizeof workloads / sizeof workloads[0]; i++)
		if (strcmp(name, workloads[i]) == 0)
			return 1;
	return 0;
}

static int parse_count(const char *opt, const char *arg, unsigned max, unsigned *out,
		       struct tern_error *err)
{
	uint64_t v;
	if (tern_parse_u64(arg, &v, NULL) < 0 || v == 0 || v > max)
		return tern_errorf(err, -EINVAL, "%s '%s': expected a number from 1 to %u", opt, arg,
				   max);
	*out = (unsigned)v;
	return 0;
}

static int append_words(struct run_options *o, const char *words, struct tern_error *err)
{
	size_t used = strlen(o->append);
	size_t need = strlen(words) + (used ? 1 : 0);
	if (used + need >= sizeof o->append)
		return tern_errorf(err, -E2BIG, "kernel command line longer than %zu bytes",
				   sizeof o->append - 1);
	snprintf(o->append + used, sizeof o->append - used, "%s%s", used ? " " : "", words);
	return 0;
}

int cli_parse_run(int argc, char **argv, struct run_options *o, struct tern_error *err)
{
	static const struct option longopts[] = {
		{ "memory", required_argument, NULL, 'm' },
		{ "vcpus", required_argument, NULL, 'c' },
		{ "memslots", required_argument, NULL, 'n' },
		{ "kernel", required_argument, NULL, 'k' },
		{ "append", required_argument, NULL, 'a' },
		{ "workload", required_argument, NULL, 'w' },
		{ "serial", required_argument, NULL, 's' },
		{ "qmp", required_argument, NULL, 'q' },
		{ "paused", no_argument, NULL, 'S' },
		{ "mem-prealloc", no_argument, NULL, 'P' },
		{ "dirty-tracking", required_argument, NULL, 'd' },
		{ "dirty-ring-size", required_argument, NULL, 'r' },
		{ "incoming", required_argument, NULL, 'i' },
		{ "incoming-lazy", no_argument, NULL, 'L' },
		{ "device", required_argument, NULL, 'D' },
		{ "drive", required_argument, NULL, 'B' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	memset(o, 0, sizeof *o);
	o->memory = DEFAULT_MEMORY;
	o->vcpus = 1;
	o->serial = "stdio";
	const char *workload = NULL;
	opterr = 0;
	optind = 0; /* full reset, so the parser can run more than once */
	int c;
	while ((c = getopt_long(argc, argv, "+:m:w:Sh", longopts, NULL)) != -1) {
		int rc = 0;
		switch (c) {
		case 'm':
			rc = tern_parse_size(optarg, 20, &o->memory, err);
			if (rc < 0)
				tern_error_prefix(err, "--memory");
			break;
		case 'c':
			rc = parse_count("--vcpus", optarg, 1024, &o->vcpus, err);
			break;
		case 'n':
			rc = parse_count("--memslots", optarg, 1u << 20, &o->memslots, err);
			break;
		case 'k':
			o->kernel = optarg;
			break;
		case 'a':
			rc = append_words(o, optarg, err);
			break;
		case 'w':
			workload = optarg;
			break;
		case 's':
			o->serial = optarg;
			break;
		case 'q':
			o->qmp = optarg;
			break;
		case 'S':
			o->start_paused = 1;
			break;
		case 'P':
			o->mem_prealloc = 1;
			break;
		case 'd':
			if (strcmp(optarg, "log") == 0)
				o->dirty_mode = DIRTY_MODE_LOG;
			else if (strcmp(optarg, "ring") == 0)
				o->dirty_mode = DIRTY_MODE_RING;
			else
				rc = tern_errorf(err, -EINVAL, "--dirty-tracking '%s': choose log or ring",
						 optarg);
			break;
		case 'r':
			rc = parse_count("--dirty-ring-size", optarg, 1u << 20, &o->dirty_ring_entries,
					 err);
			if (rc == 0 && (o->dirty_ring_entries & (o->dirty_ring_entries - 1)) != 0)
				rc = tern_errorf(err, -EINVAL, "--dirty-ring-size %s: must be a power of "
						 "two", optarg);
			break;
		case 'D':
			/* Its options are checked when it is built. */
			if (o->ndevices == VM_MAX_DEVICES)
				rc = tern_errorf(err, -EINVAL, "--device: at most %d devices",
						 VM_MAX_DEVICES);
			else if (strlen(optarg) >= DEVICE_SPEC_MAX)
				rc = tern_errorf(err, -EINVAL, "--device '%.32s...': too long", optarg);
			else if (device_kind_of(optarg, err) == NULL)
				rc = -EINVAL;
			else
				o->device[o->ndevices++] = optarg;
			break;
		case 'B': {
			/* QEMU's -drive words, if=virtio implied: a virtio-blk-pci
			 * device, so a live update carries it as a device spec. */
			char *spec = o->drive_spec[o->ndevices < VM_MAX_DEVICES ? o->ndevices : 0];
			if (o->ndevices == VM_MAX_DEVICES)
				rc = tern_errorf(err, -EINVAL, "--drive: at most %d devices",
						 VM_MAX_DEVICES);
			else if (snprintf(spec, DEVICE_SPEC_MAX, "virtio-blk-pci,%s", optarg) >=
				 DEVICE_SPEC_MAX)
				rc = tern_errorf(err, -EINVAL, "--drive '%.32s...': too long", optarg);
			else
				o->device[o->ndevices++] = spec;
			break;
		}
		case 'i':
			if (strcmp(optarg, "defer") != 0 && strncmp(optarg, "tcp:", 4) != 0 &&
			    strncmp(optarg, "unix:", 5) != 0 && strncmp(optarg, "file:", 5) != 0 &&
			    strncmp(optarg, "fd:", 3) != 0 &&
			    (strncmp(optarg, "cpr:unix:", 9) != 0 || optarg[9] == '\0'))
				rc = tern_errorf(err, -EINVAL, "--incoming '%s': expected tcp:HOST:PORT, "
						 "unix:PATH, file:PATH, fd:N, cpr:unix:PATH or defer",
						 optarg);
			o->incoming = optarg;
			break;
		case 'L':
			o->lazy_incoming = 1;
			break;
		case 'h':
			o->help = 1;
			return 0;
		case ':':
			return tern_errorf(err, -EINVAL, "option '%s' needs a value",
					   argv[optind - 1]);
		default:
			return tern_errorf(err, -EINVAL, "unknown option '%s' (see tern run --help)",
					   argv[optind - 1]);
		}
		if (rc < 0)
			return rc;
	}
	if (optind < argc)
		return tern_errorf(err, -EINVAL, "unexpected argument '%s' (see tern run --help)",
				   argv[optind]);
	if (o->incoming != NULL && strncmp(o->incoming, "cpr:", 4) == 0 && argc - 1 > 2)
		return tern_errorf(err, -EINVAL, "--incoming cpr:... takes the whole machine from "
				   "the live update: give no other options");
	if (o->lazy_incoming && o->incoming == NULL)
		return tern_errorf(err, -EINVAL, "--incoming-lazy goes with --incoming");
	if (o->incoming != NULL && (o->kernel != NULL || o->append[0] != '\0' || workload != NULL))
		return tern_errorf(err, -EINVAL, "--incoming takes the guest from the migration: "
				   "leave out --kernel, --append and --workload");
	if (workload != NULL) {
		if (!cli_known_workload(workload))
			return tern_errorf(err, -EINVAL, "unknown workload '%s' (choose idle, random, "
					   "sequential, hotcold or sparse)", workload);
		char word[64];
		snprintf(word, sizeof word, "workload=%s", workload);
		int rc = append_words(o, word, err);
		if (rc < 0)
			return rc;
	}
	return 0;
}
