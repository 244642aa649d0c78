/*
 * tern-img convert: qcow2 <-> raw (and qcow2 -> qcow2), skipping zeros so
 * that the destination stays sparse.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "img.h"
#include "tern/zero.h"

#define CHUNK (2u << 20)

struct endpoint {
	const char *path;
	struct tern_qcow2 *q;
	int fd;
	uint64_t size;
};

static bool probe_qcow2(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	unsigned char m[4] = { 0 };
	bool yes = fd >= 0 && read(fd, m, 4) == 4 && m[0] == 'Q' && m[1] == 'F' && m[2] == 'I' &&
		   m[3] == 0xfb;
	if (fd >= 0)
		close(fd);
	return yes;
}

static int open_source(struct endpoint *e, const char *fmt)
{
	bool qcow2 = fmt ? !strcmp(fmt, "qcow2") : probe_qcow2(e->path);
	if (fmt && strcmp(fmt, "qcow2") && strcmp(fmt, "raw"))
		return img_usage("convert: unknown format '%s'", fmt);
	if (qcow2) {
		if (img_open(e->path, false, true, &e->q))
			return 1;
		struct tern_qcow2_info in;
		tern_qcow2_get_info(e->q, &in);
		e->size = in.size;
		return 0;
	}
	e->fd = open(e->path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (e->fd < 0 || fstat(e->fd, &st) < 0) {
		fprintf(stderr, "tern-img: %s: %s\n", e->path, strerror(errno));
		return 1;
	}
	e->size = (uint64_t)st.st_size;
	return 0;
}

static int rw_all(int fd, void *buf, size_t len, uint64_t off, bool write_it)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = write_it ? pwrite(fd, (char *)buf + done, len - done, (off_t)(off + done))
				     : pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) {
			memset((char *)buf + done, 0, len - done);
			break;
		}
		done += (size_t)n;
	}
	return 0;
}

int img_convert(int argc, char **argv)
{
	const char *in_fmt = NULL, *out_fmt = "raw";
	bool progress = false;
	struct tern_qcow2_create_opts co = { 0 };
	int c;
	optind = 1;
	while ((c = getopt(argc, argv, "f:O:o:pqU")) != -1) {
		switch (c) {
		case 'f': in_fmt = optarg; break;
		case 'O': out_fmt = optarg; break;
		case 'o':
			if (img_parse_create_options(optarg, &co))
				return 1;
			break;
		case 'p': progress = true; break;
		case 'q': case 'U': break;
		default: return img_usage("convert: bad option");
		}
	}
	if (argc - optind != 2)
		return img_usage("convert: give a source and a destination");
	if (strcmp(out_fmt, "qcow2") && strcmp(out_fmt, "raw"))
		return img_usage("convert: unknown output format '%s'", out_fmt);
	struct endpoint src = { .path = argv[optind], .fd = -1 };
	struct endpoint dst = { .path = argv[optind + 1], .fd = -1 };
	if (open_source(&src, in_fmt))
		return 1;
	struct tern_error err = { { 0 } };
	int r = 0;
	if (!strcmp(out_fmt, "qcow2")) {
		co.size = src.size;
		struct tern_qcow2_open_opts oo = { .writable = true };
		if (tern_qcow2_create(dst.path, &co, &err) < 0 ||
		    tern_qcow2_open(dst.path, &oo, &dst.q, &err) < 0)
			r = img_fail(dst.path, &err);
	} else {
		dst.fd = open(dst.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (dst.fd < 0 || ftruncate(dst.fd, (off_t)src.size) < 0) {
			fprintf(stderr, "tern-img: %s: %s\n", dst.path, strerror(errno));
			r = 1;
		}
	}
	uint8_t *buf = r == 0 ? malloc(CHUNK) : NULL;
	if (r == 0 && !buf)
		r = 1;
	img_progress(progress && r == 0, 0);
	for (uint64_t off = 0; r == 0 && off < src.size; off += CHUNK) {
		size_t n = src.size - off < CHUNK ? (size_t)(src.size - off) : CHUNK;
		if (src.q ? tern_qcow2_read(src.q, buf, off, n, &err) < 0
			  : rw_all(src.fd, buf, n, off, false) < 0) {
			r = src.q ? img_fail(src.path, &err) : img_usage("convert: reading %s failed", src.path);
			break;
		}
		if (!tern_is_zero(buf, n)) {
			if (dst.q ? tern_qcow2_write(dst.q, buf, off, n, &err) < 0
				  : rw_all(dst.fd, buf, n, off, true) < 0)
				r = dst.q ? img_fail(dst.path, &err)
					  : img_usage("convert: writing %s failed", dst.path);
		}
		img_progress(progress, (double)(off + n) / (double)src.size);
	}
	if (progress && r == 0)
		fprintf(stderr, "\n");
	free(buf);
	if (src.q)
		tern_qcow2_close(src.q, NULL);
	if (src.fd >= 0)
		close(src.fd);
	if (dst.q && tern_qcow2_close(dst.q, &err) < 0 && r == 0)
		r = img_fail(dst.path, &err);
	if (dst.fd >= 0 && (fsync(dst.fd) < 0 || close(dst.fd) < 0) && r == 0)
		r = 1;
	return r;
}
