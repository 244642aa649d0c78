/* What the migration engine's tests share; see mig_support.h. */
#include "mig_support.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

void assert_same_memory(const struct fake *a, const struct fake *b)
{
	for (int r = 0; r < 2; r++)
		for (uint64_t off = 0; off < a->reg[r].size; off += PAGE)
			if (memcmp(a->reg[r].host + off, b->reg[r].host + off, PAGE) != 0)
				fail_msg("region %d page %llu differs", r, (unsigned long long)(off / PAGE));
}

static void *source_main(void *arg)
{
	struct source_run *s = arg;
	s->rc = tern_migration_run(&s->m);
	return NULL;
}

void source_start(struct source_run *s, struct fake *f, const struct tern_mig_params *p,
		  const char *uri)
{
	struct tern_error err;
	assert_int_equal(tern_channel_connect(&s->ch, uri, &err), 0);
	tern_migration_init(&s->m, p, &fake_source_ops, f, &s->ch);
	assert_int_equal(pthread_create(&s->thread, NULL, source_main, s), 0);
}

void source_join(struct source_run *s)
{
	pthread_join(s->thread, NULL);
	tern_channel_close(&s->ch);
}

int dest_run(struct fake *d, const char *uri, struct tern_mig_stats *stats,
	     struct tern_error *err)
{
	struct tern_channel ch;
	int rc = tern_channel_accept(&ch, uri, -1, err);
	if (rc < 0)
		return rc;
	struct tern_incoming in;
	tern_incoming_init(&in, &fake_dest_ops, d, &ch);
	rc = tern_incoming_run(&in, err);
	tern_incoming_get_stats(&in, stats);
	tern_incoming_destroy(&in);
	tern_channel_close(&ch);
	return rc;
}

static void *dest_main(void *arg)
{
	struct dest_thread *t = arg;
	t->rc = dest_run(t->d, t->uri, &t->st, &t->err);
	return NULL;
}

void dest_start(struct dest_thread *t, struct fake *d, const char *uri)
{
	memset(t, 0, sizeof *t);
	t->d = d;
	snprintf(t->uri, sizeof t->uri, "%s", uri);
	assert_int_equal(pthread_create(&t->thread, NULL, dest_main, t), 0);
}

void dest_join(struct dest_thread *t)
{
	pthread_join(t->thread, NULL);
}

void pair(int sv[2], char src[32], char dst[32])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	snprintf(src, 32, "fd:%d", sv[0]);
	snprintf(dst, 32, "fd:%d", sv[1]);
}

void migrate_live(struct fake *src, struct fake *dst, const struct tern_mig_params *p,
		  struct tern_mig_stats *ss, struct tern_mig_stats *ds)
{
	int sv[2];
	char su[32], du[32];
	pair(sv, su, du);
	struct source_run s;
	source_start(&s, src, p, su);
	struct tern_error err = { .msg = "" };
	int rc = dest_run(dst, du, ds, &err);
	source_join(&s);
	tern_migration_get_stats(&s.m, ss);
	if (rc != 0 || s.rc != 0)
		fail_msg("destination: %d %s; source: %d %s", rc, err.msg, s.rc, ss->error);
	tern_migration_destroy(&s.m);
	close(sv[0]);
	close(sv[1]);
}

void check_arrived(struct fake *src, struct fake *dst, const struct tern_mig_stats *ss)
{
	writer_stop(src);
	assert_int_equal(ss->status, TERN_MIG_COMPLETED);
	assert_int_equal(src->last_event, TERN_MIG_COMPLETED);
	assert_int_equal(dst->last_event, TERN_MIG_COMPLETED);
	assert_true(src->stopped);            /* the guest has moved */
	assert_int_equal(src->resumed, 0);
	assert_false(src->tracking);
	assert_true(dst->finished && dst->ran);
	assert_int_equal(dst->cpu_state, src->cpu_state);
	assert_same_memory(src, dst);
	assert_int_equal(ss->total, LOW_SIZE + HIGH_SIZE);
	assert_int_equal(ss->remaining, 0);
	assert_true(ss->dirty_sync_count >= 2); /* one iteration at least, and the last sync */
}

char *temp_path(const char *name)
{
	static char path[256];
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(path, sizeof path, "%s/tern-test-migration-%d-%s", dir, (int)getpid(), name);
	return path;
}

void save_to_file(struct fake *src, const char *path, int xbzrle, struct tern_mig_stats *ss)
{
	char uri[300];
	snprintf(uri, sizeof uri, "file:%s", path);
	struct tern_mig_params p;
	tern_mig_params_default(&p);
	p.xbzrle = xbzrle;
	struct source_run s;
	source_start(&s, src, &p, uri);
	source_join(&s);
	tern_migration_get_stats(&s.m, ss);
	if (s.rc != 0)
		fail_msg("source: %d %s", s.rc, ss->error);
	tern_migration_destroy(&s.m);
}
