/*
 * tern-img: qemu-img's verbs for qcow2 images, on libtern's qcow2 engine.
 * Exit codes follow qemu-img: 0 success, 1 failure (check: 2 corruption,
 * 3 leaks only).
 */
#ifndef TERN_IMG_H
#define TERN_IMG_H

#include <stdbool.h>
#include <stdint.h>

#include "tern/qcow2.h"

int img_create(int argc, char **argv);
int img_info(int argc, char **argv);
int img_map(int argc, char **argv);
int img_check(int argc, char **argv);
int img_snapshot(int argc, char **argv);
int img_convert(int argc, char **argv);

/* Parse "-o key=value,..." into create options. */
int img_parse_create_options(const char *s, struct tern_qcow2_create_opts *o);

/* Print "tern-img: <what>: <message>" and return 1. */
int img_fail(const char *what, const struct tern_error *err);
int img_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Open a qcow2 image, reporting failure on stderr.  Only verbs that read
 * guest data open the backing file (`backing`); the others inspect or
 * change this image's metadata alone, as qemu-img info does. */
int img_open(const char *path, bool writable, bool backing, struct tern_qcow2 **q);
/* The snapshot table as qemu-img prints it. */
void img_print_snapshots(struct tern_qcow2 *q);
/* Parse --output=human|json; returns -1 for anything else. */
int img_output_json(const char *arg, bool *json);
/* The options info and map share ([-f FMT] [-U] [--output=...] FILE, and
 * --backing-chain where `chain` is non-NULL):
 * 0 with *path set, or the exit status of a usage error. */
int img_parse_output_args(int argc, char **argv, const char *verb, bool *json,
			  bool *chain, const char **path);

/* Progress on stderr, as qemu-img -p prints it. */
void img_progress(bool enabled, double fraction);

#endif
