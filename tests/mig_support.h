/*
 * What the migration engine's tests without KVM share (tests/mig_support.c):
 * a source and a destination on fake guests (harness/fake_guest.h), over a
 * socketpair, a file or a pipe, and the checks that a guest arrived.
 */
#ifndef TESTS_MIG_SUPPORT_H
#define TESTS_MIG_SUPPORT_H

#include <pthread.h>

#include "../harness/fake_guest.h"
#include "tern/migration.h"

/* A source migration in a thread of its own. */
struct source_run {
	struct tern_migration m;
	struct tern_channel ch;
	pthread_t thread;
	int rc;
};

void source_start(struct source_run *s, struct fake *f, const struct tern_mig_params *p,
		  const char *uri);
void source_join(struct source_run *s);

/* A destination here and now: accept uri, load, run. */
int dest_run(struct fake *d, const char *uri, struct tern_mig_stats *stats,
	     struct tern_error *err);

/* A destination in a thread of its own. */
struct dest_thread {
	struct fake *d;
	char uri[300];
	struct tern_mig_stats st;
	struct tern_error err;
	int rc;
	pthread_t thread;
};

void dest_start(struct dest_thread *t, struct fake *d, const char *uri);
void dest_join(struct dest_thread *t);

/* A socketpair; the URIs for both ends. */
void pair(int sv[2], char src[32], char dst[32]);
/* Migrate over a socketpair while the writer runs; returns both stats. */
void migrate_live(struct fake *src, struct fake *dst, const struct tern_mig_params *p,
		  struct tern_mig_stats *ss, struct tern_mig_stats *ds);
/* The guest moved whole: stopped here, running there, the same memory. */
void check_arrived(struct fake *src, struct fake *dst, const struct tern_mig_stats *ss);
void assert_same_memory(const struct fake *a, const struct fake *b);

/* $TMPDIR/tern-test-migration-PID-name (a static buffer). */
char *temp_path(const char *name);
/* Save to a file, stopped or not; returns the source stats. */
void save_to_file(struct fake *src, const char *path, int xbzrle, struct tern_mig_stats *ss);

#endif
