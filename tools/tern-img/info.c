/*
 * tern-img info and map.
 */
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "img.h"

int img_parse_output_args(int argc, char **argv, const char *verb, bool *json,
			  bool *chain, const char **path)
{
	static const struct option longopts[] = { { "output", required_argument, NULL, 'O' },
						  { "backing-chain", no_argument, NULL, 'B' },
						  { 0, 0, 0, 0 } };
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "f:U", longopts, NULL)) != -1) {
		if (c == 'O' && img_output_json(optarg, json) == 0)
			continue;
		if (c == 'B' && chain) {
			*chain = true;
			continue;
		}
		if (c != 'f' && c != 'U')
			return img_usage("%s: bad option", verb);
	}
	if (optind >= argc)
		return img_usage("%s: no file name", verb);
	*path = argv[optind];
	return 0;
}

int img_output_json(const char *arg, bool *json)
{
	if (!strcmp(arg, "json"))
		*json = true;
	else if (!strcmp(arg, "human"))
		*json = false;
	else
		return -1;
	return 0;
}

static void human_size(uint64_t v, char *out, size_t len)
{
	static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double d = (double)v;
	int u = 0;
	while (d >= 1024 && u < 5) {
		d /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, len, "%" PRIu64 " B", v);
	else
		snprintf(out, len, "%.3g %s", d, units[u]);
}

void img_print_snapshots(struct tern_qcow2 *q)
{
	printf("%-10s%-17s%7s%20s%13s%11s\n", "ID", "TAG", "VM SIZE", "DATE", "VM CLOCK", "ICOUNT");
	for (uint32_t i = 0; i < tern_qcow2_snapshot_count(q); i++) {
		struct tern_qcow2_snapshot_info s;
		tern_qcow2_snapshot_get(q, i, &s);
		char date[32], size[32], clock[32], icount[32] = "";
		time_t t = s.date_sec;
		struct tm tm;
		localtime_r(&t, &tm);
		strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
		human_size(s.vm_state_size, size, sizeof(size));
		uint64_t ms = s.vm_clock_nsec / 1000000;
		snprintf(clock, sizeof(clock), "%02" PRIu64 ":%02" PRIu64 ":%02" PRIu64 ".%03" PRIu64,
			 ms / 3600000, ms / 60000 % 60, ms / 1000 % 60, ms % 1000);
		if (s.icount != UINT64_MAX)
			snprintf(icount, sizeof(icount), "%" PRIu64, s.icount);
		printf("%-9s %-16s %7s %19s %12s %10s\n", s.id, s.name, size, date, clock, icount);
	}
}

static json_t *snapshots_json(struct tern_qcow2 *q)
{
	json_t *a = json_array();
	for (uint32_t i = 0; i < tern_qcow2_snapshot_count(q); i++) {
		struct tern_qcow2_snapshot_info s;
		tern_qcow2_snapshot_get(q, i, &s);
		json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "id", s.id, "name", s.name,
				      "vm-state-size", (json_int_t)s.vm_state_size, "date-sec",
				      (json_int_t)s.date_sec, "date-nsec", (json_int_t)s.date_nsec,
				      "vm-clock-sec", (json_int_t)(s.vm_clock_nsec / 1000000000),
				      "vm-clock-nsec", (json_int_t)(s.vm_clock_nsec % 1000000000));
		if (s.icount != UINT64_MAX)
			json_object_set_new(o, "icount", json_integer((json_int_t)s.icount));
		json_array_append_new(a, o);
	}
	return a;
}

static json_t *qcow2_json(struct tern_qcow2 *q, const char *path)
{
	struct tern_qcow2_info in;
	tern_qcow2_get_info(q, &in);
	json_t *data = json_pack("{s:s, s:s, s:b, s:i, s:b, s:b}", "compat",
				 in.version == 3 ? "1.1" : "0.10", "compression-type",
				 in.zstd ? "zstd" : "zlib", "lazy-refcounts", in.lazy_refcounts,
				 "refcount-bits", in.refcount_bits, "corrupt", in.corrupt, "extended-l2", 0);
	json_t *o = json_pack("{s:I, s:s, s:I, s:s, s:I, s:b, s:{s:s, s:o}}", "virtual-size",
			      (json_int_t)in.size, "filename", path, "cluster-size",
			      (json_int_t)in.cluster_size, "format", "qcow2", "actual-size",
			      (json_int_t)in.allocated, "dirty-flag", in.dirty, "format-specific",
			      "type", "qcow2", "data", data);
	if (in.nb_snapshots)
		json_object_set_new(o, "snapshots", snapshots_json(q));
	if (in.backing_file[0]) {
		json_object_set_new(o, "backing-filename", json_string(in.backing_file));
		if (in.backing_format[0])
			json_object_set_new(o, "backing-filename-format", json_string(in.backing_format));
	}
	return o;
}

static void qcow2_text(struct tern_qcow2 *q, const char *path)
{
	struct tern_qcow2_info in;
	tern_qcow2_get_info(q, &in);
	char vsize[32], dsize[32];
	human_size(in.size, vsize, sizeof(vsize));
	human_size(in.allocated, dsize, sizeof(dsize));
	printf("image: %s\nfile format: qcow2\nvirtual size: %s (%" PRIu64 " bytes)\n"
	       "disk size: %s\ncluster_size: %" PRIu64 "\n", path, vsize, in.size, dsize,
	       in.cluster_size);
	if (in.backing_file[0]) {
		printf("backing file: %s\n", in.backing_file);
		if (in.backing_format[0])
			printf("backing file format: %s\n", in.backing_format);
	}
	if (in.nb_snapshots) {
		printf("Snapshot list:\n");
		img_print_snapshots(q);
	}
	printf("Format specific information:\n    compat: %s\n    compression type: %s\n"
	       "    lazy refcounts: %s\n    refcount bits: %u\n    corrupt: %s\n"
	       "    extended l2: false\n", in.version == 3 ? "1.1" : "0.10",
	       in.zstd ? "zstd" : "zlib", in.lazy_refcounts ? "true" : "false", in.refcount_bits,
	       in.corrupt ? "true" : "false");
}

/* A raw backing file at the end of a chain. */
static json_t *raw_info(const char *path, uint64_t size, bool json)
{
	struct stat st;
	uint64_t allocated = stat(path, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
	if (json)
		return json_pack("{s:I, s:s, s:s, s:I}", "virtual-size", (json_int_t)size, "filename",
				 path, "format", "raw", "actual-size", (json_int_t)allocated);
	char vsize[32], dsize[32];
	human_size(size, vsize, sizeof(vsize));
	human_size(allocated, dsize, sizeof(dsize));
	printf("image: %s\nfile format: raw\nvirtual size: %s (%" PRIu64 " bytes)\ndisk size: %s\n",
	       path, vsize, size, dsize);
	return NULL;
}

/* Like qemu-img info: the backing file is not opened, unless
 * --backing-chain asks for every image of the chain in turn (which the
 * engine opens whole first, refusing loops and files that are not
 * regular files). */
int img_info(int argc, char **argv)
{
	bool json = false, chain = false;
	const char *path;
	int r = img_parse_output_args(argc, argv, "info", &json, &chain, &path);
	if (r)
		return r;
	struct tern_qcow2 *q;
	if (img_open(path, false, chain, &q))
		return 1;
	json_t *list = json_array();
	const char *name = path;
	for (struct tern_qcow2 *cur = q; cur;) {
		if (json)
			json_array_append_new(list, qcow2_json(cur, name));
		else
			qcow2_text(cur, name);
		if (!chain)
			break;
		uint64_t size = 0;
		struct tern_qcow2 *next = tern_qcow2_backing(cur, &name, &size);
		if (name && !json)
			printf("\n");
		if (name && !next) {
			json_t *raw = raw_info(name, size, json);
			if (raw)
				json_array_append_new(list, raw);
		}
		cur = next;
	}
	if (json) {
		json_t *out = chain ? json_incref(list) : json_incref(json_array_get(list, 0));
		char *s = json_dumps(out, JSON_INDENT(4) | JSON_PRESERVE_ORDER);
		printf("%s\n", s);
		free(s);
		json_decref(out);
	}
	json_decref(list);
	tern_qcow2_close(q, NULL);
	return 0;
}

int img_map(int argc, char **argv)
{
	bool json = false;
	const char *path;
	int r = img_parse_output_args(argc, argv, "map", &json, NULL, &path);
	if (r)
		return r;
	/* Only this image's clusters are mapped: no backing file opened. */
	struct tern_qcow2 *q;
	if (img_open(path, false, false, &q))
		return 1;
	struct tern_qcow2_info in;
	tern_qcow2_get_info(q, &in);
	struct tern_error err = { { 0 } };
	if (json)
		printf("[");
	else
		printf("%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to", "File");
	bool first = true;
	/* Runs of one kind, merged across L2 tables. */
	uint64_t run_start = 0, run_len = 0, run_host = 0;
	enum tern_qcow2_status run_st = TERN_QCOW2_UNALLOCATED;
	for (uint64_t off = 0; off <= in.size; ) {
		uint64_t len = in.size - off, host = 0;
		enum tern_qcow2_status st = TERN_QCOW2_UNALLOCATED;
		bool end = off == in.size;
		if (!end && tern_qcow2_block_status(q, off, &len, &st, &host, &err) < 0) {
			r = img_fail(path, &err);
			break;
		}
		bool same = !end && run_len && st == run_st &&
			    (st != TERN_QCOW2_DATA || host == run_host + run_len);
		if (!same && run_len) {
			bool data = run_st == TERN_QCOW2_DATA || run_st == TERN_QCOW2_COMPRESSED;
			if (json) {
				printf("%s{ \"start\": %" PRIu64 ", \"length\": %" PRIu64
				       ", \"depth\": 0, \"present\": %s, \"zero\": %s, \"data\": %s",
				       first ? "" : ",\n", run_start, run_len,
				       run_st == TERN_QCOW2_UNALLOCATED ? "false" : "true",
				       run_st == TERN_QCOW2_ZERO || run_st == TERN_QCOW2_UNALLOCATED ? "true" : "false",
				       data ? "true" : "false");
				if (run_st == TERN_QCOW2_DATA)
					printf(", \"offset\": %" PRIu64, run_host);
				printf("}");
				first = false;
			} else if (run_st == TERN_QCOW2_DATA) {
				printf("%#-16" PRIx64 "%#-16" PRIx64 "%#-16" PRIx64 "%s\n", run_start, run_len,
				       run_host, path);
			}
			run_len = 0;
		}
		if (end)
			break;
		if (!run_len) {
			run_start = off;
			run_st = st;
			run_host = host;
		}
		run_len += len;
		off += len;
	}
	if (json)
		printf("]\n");
	tern_qcow2_close(q, NULL);
	return r;
}
