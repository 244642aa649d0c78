/*
 * tern-img create.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "img.h"
#include "tern/parse.h"

static int parse_bool(const char *v, bool *out)
{
	if (!strcmp(v, "on") || !strcmp(v, "true"))
		*out = true;
	else if (!strcmp(v, "off") || !strcmp(v, "false"))
		*out = false;
	else
		return -1;
	return 0;
}

int img_parse_create_options(const char *s, struct tern_qcow2_create_opts *o)
{
	char *copy = strdup(s), *save = NULL;
	int r = 0;
	for (char *kv = strtok_r(copy, ",", &save); kv && r == 0; kv = strtok_r(NULL, ",", &save)) {
		char *v = strchr(kv, '=');
		if (!v) {
			r = img_usage("option '%s' needs a value", kv);
			break;
		}
		*v++ = 0;
		struct tern_error err;
		uint64_t n;
		if (!strcmp(kv, "cluster_size")) {
			if (tern_parse_size(v, 0, &n, &err) < 0 || n < 512 || n > (2u << 20) || (n & (n - 1)))
				r = img_usage("cluster_size must be a power of two from 512 to 2M");
			else
				o->cluster_bits = (unsigned)__builtin_ctzll(n);
		} else if (!strcmp(kv, "refcount_bits")) {
			if (tern_parse_u64(v, &n, &err) < 0 || !n || n > 64 || (n & (n - 1)))
				r = img_usage("refcount_bits must be 1, 2, 4, 8, 16, 32 or 64");
			else
				o->refcount_bits = (unsigned)n;
		} else if (!strcmp(kv, "preallocation")) {
			if (!strcmp(v, "metadata"))
				o->preallocate_metadata = true;
			else if (strcmp(v, "off"))
				r = img_usage("preallocation must be off or metadata");
		} else if (!strcmp(kv, "lazy_refcounts")) {
			if (parse_bool(v, &o->lazy_refcounts) < 0)
				r = img_usage("lazy_refcounts must be on or off");
		} else if (!strcmp(kv, "compression_type")) {
			if (!strcmp(v, "zstd"))
				o->zstd = true;
			else if (strcmp(v, "zlib"))
				r = img_usage("compression_type must be zlib or zstd");
		} else if (!strcmp(kv, "compat")) {
			if (strcmp(v, "1.1") && strcmp(v, "v3"))
				r = img_usage("tern-img creates compat=1.1 (version 3) images only");
		} else if (!strcmp(kv, "size")) {
			if (tern_parse_size(v, 0, &o->size, &err) < 0)
				r = img_usage("size: %s", err.msg);
		} else if (!strcmp(kv, "backing_file")) {
			o->backing_file = strdup(v);
		} else if (!strcmp(kv, "backing_fmt")) {
			o->backing_format = strdup(v);
		} else {
			r = img_usage("unknown option '%s'", kv);
		}
	}
	free(copy);
	return r;
}

int img_create(int argc, char **argv)
{
	struct tern_qcow2_create_opts o = { 0 };
	const char *fmt = "qcow2";
	int c;
	optind = 1;
	while ((c = getopt(argc, argv, "f:o:b:F:q")) != -1) {
		switch (c) {
		case 'f': fmt = optarg; break;
		case 'o':
			if (img_parse_create_options(optarg, &o))
				return 1;
			break;
		case 'b': o.backing_file = optarg; break;
		case 'F': o.backing_format = optarg; break;
		case 'q': break;
		default: return img_usage("create: bad option");
		}
	}
	if (strcmp(fmt, "qcow2"))
		return img_usage("create: only the qcow2 format is supported");
	if (optind >= argc)
		return img_usage("create: no file name");
	const char *path = argv[optind];
	struct tern_error err = { { 0 } };
	if (optind + 1 < argc && tern_parse_size(argv[optind + 1], 0, &o.size, &err) < 0)
		return img_fail("size", &err);
	if (optind + 1 >= argc && !o.size) {
		if (!o.backing_file)
			return img_usage("create: no size given");
		/* The size of the backing image, as qemu-img takes it. */
		struct tern_qcow2 *b;
		struct tern_qcow2_open_opts oo = { .no_backing = true };
		char full[4096];
		if (o.backing_file[0] != '/' && strchr(path, '/'))
			snprintf(full, sizeof(full), "%.*s/%s", (int)(strrchr(path, '/') - path), path,
				 o.backing_file);
		else
			snprintf(full, sizeof(full), "%s", o.backing_file);
		struct stat st;
		if (o.backing_format && !strcmp(o.backing_format, "raw")) {
			if (stat(full, &st) < 0) {
				fprintf(stderr, "tern-img: %s: %s\n", full, strerror(errno));
				return 1;
			}
			o.size = (uint64_t)st.st_size;
		} else {
			if (tern_qcow2_open(full, &oo, &b, &err) < 0)
				return img_fail(full, &err);
			struct tern_qcow2_info info;
			tern_qcow2_get_info(b, &info);
			o.size = info.size;
			tern_qcow2_close(b, NULL);
		}
	}
	if (tern_qcow2_create(path, &o, &err) < 0)
		return img_fail(path, &err);
	return 0;
}
