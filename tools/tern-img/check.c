/*
 * tern-img check: report (and with -r repair) refcount and flag errors.
 */
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "img.h"

static void print_line(void *opaque, const char *line)
{
	(void)opaque;
	fprintf(stderr, "%s\n", line);
}

int img_check(int argc, char **argv)
{
	bool json = false;
	enum tern_qcow2_repair repair = TERN_QCOW2_REPAIR_NONE;
	static const struct option longopts[] = { { "output", required_argument, NULL, 'O' },
						  { 0, 0, 0, 0 } };
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "f:r:qU", longopts, NULL)) != -1) {
		if (c == 'O' && img_output_json(optarg, &json) == 0)
			continue;
		if (c == 'r' && !strcmp(optarg, "leaks"))
			repair = TERN_QCOW2_REPAIR_LEAKS;
		else if (c == 'r' && !strcmp(optarg, "all"))
			repair = TERN_QCOW2_REPAIR_ALL;
		else if (c != 'f' && c != 'q' && c != 'U')
			return img_usage("check: bad option");
	}
	if (optind >= argc)
		return img_usage("check: no file name");
	const char *path = argv[optind];
	struct tern_error err = { { 0 } };
	struct tern_qcow2 *q;
	struct tern_qcow2_open_opts o = { .writable = repair != TERN_QCOW2_REPAIR_NONE,
					  .skip_repair = true, .no_backing = true };
	if (tern_qcow2_open(path, &o, &q, &err) < 0) {
		img_fail(path, &err);
		return 1;
	}
	struct tern_qcow2_check res = { .report = json ? NULL : print_line };
	int r = tern_qcow2_check(q, repair, &res, &err);
	int close_r = tern_qcow2_close(q, r < 0 ? NULL : &err);
	if (r < 0 || close_r < 0) {
		img_fail(path, &err);
		return 1;
	}
	uint64_t corrupt = res.corruptions - res.corruptions_fixed, leaks = res.leaks - res.leaks_fixed;
	if (json) {
		json_t *j = json_pack("{s:I, s:I, s:I, s:I, s:I, s:s, s:s, s:I, s:I, s:I}",
				      "image-end-offset", (json_int_t)res.image_end_offset,
				      "total-clusters", (json_int_t)res.total_clusters, "check-errors",
				      (json_int_t)res.check_errors, "leaks", (json_int_t)leaks,
				      "corruptions", (json_int_t)corrupt, "filename", path, "format",
				      "qcow2", "allocated-clusters", (json_int_t)res.allocated_clusters,
				      "fragmented-clusters", (json_int_t)res.fragmented_clusters,
				      "compressed-clusters", (json_int_t)res.compressed_clusters);
		if (res.leaks_fixed)
			json_object_set_new(j, "leaks-fixed", json_integer((json_int_t)res.leaks_fixed));
		if (res.corruptions_fixed)
			json_object_set_new(j, "corruptions-fixed",
					    json_integer((json_int_t)res.corruptions_fixed));
		char *s = json_dumps(j, JSON_INDENT(4) | JSON_PRESERVE_ORDER);
		printf("%s\n", s);
		free(s);
		json_decref(j);
	} else {
		if (res.leaks_fixed || res.corruptions_fixed)
			printf("The following inconsistencies were found and repaired:\n\n"
			       "    %" PRIu64 " leaked clusters\n    %" PRIu64 " corruptions\n\n"
			       "Double checking the fixed image now...\n",
			       res.leaks_fixed, res.corruptions_fixed);
		if (!corrupt && !leaks)
			printf("No errors were found on the image.\n");
		if (corrupt)
			printf("\n%" PRIu64 " errors were found on the image.\n"
			       "Data may be corrupted, or further writes to the image may corrupt it.\n",
			       corrupt);
		if (leaks)
			printf("\n%" PRIu64 " leaked clusters were found on the image.\n"
			       "This means waste of disk space, but no harm to data.\n", leaks);
		if (res.overlaps)
			printf("\n%" PRIu64 " clusters are used for two things at once (overlapping "
			       "metadata).\nThis cannot be repaired: check -r changes nothing in such an "
			       "image but its corrupt bit,\nso that neither tern nor QEMU writes to it. "
			       "Copy out what reads with `tern-img convert`.\n", res.overlaps);
		double total = res.total_clusters ? (double)res.total_clusters : 1;
		printf("%" PRIu64 "/%" PRIu64 " = %.2f%% allocated, %.2f%% fragmented, %.2f%% compressed clusters\n"
		       "Image end offset: %" PRIu64 "\n", res.allocated_clusters, res.total_clusters,
		       100.0 * (double)res.allocated_clusters / total,
		       res.allocated_clusters ? 100.0 * (double)res.fragmented_clusters / (double)res.allocated_clusters : 0,
		       res.allocated_clusters ? 100.0 * (double)res.compressed_clusters / (double)res.allocated_clusters : 0,
		       res.image_end_offset);
	}
	return corrupt ? 2 : leaks ? 3 : 0;
}
