/*
 * QMP commands for migration, in QEMU's names and shapes: migrate,
 * migrate_cancel, migrate-incoming, query-migrate, and the MIGRATION and
 * MIGRATION_PASS events (the capabilities and parameters:
 * migration_params_qmp.c).
 */
#include "qmp/migration_qmp.h"
#include "qmp/migration_params_qmp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>


static int cmd_migrate(void *opaque, json_t *args, json_t **ret, struct tern_error *err)
{
	(void)ret;
	struct vm_migration *m = opaque;
	if (json_is_true(json_object_get(args, "blk")) || json_is_true(json_object_get(args, "inc")))
		return tern_errorf(err, -ENOTSUP, "tern has no block devices to migrate: leave out "
				   "blk and inc");
	if (json_is_true(json_object_get(args, "resume")))
		return tern_errorf(err, -ENOTSUP, "tern has no postcopy migration to resume");
	return vm_migration_start(m, json_string_value(json_object_get(args, "uri")), err);
}

static int cmd_migrate_cancel(void *opaque, json_t *args, json_t **ret, struct tern_error *err)
{
	(void)args;
	(void)ret;
	(void)err;
	vm_migration_cancel(opaque);
	return 0;
}

static int cmd_migrate_incoming(void *opaque, json_t *args, json_t **ret,
				struct tern_error *err)
{
	(void)ret;
	return vm_migration_incoming(opaque, json_string_value(json_object_get(args, "uri")), err);
}

/* QEMU 7.2's MigrationStats, every member (those of features tern does
 * not have are 0, as in QEMU with them off), and tern's own. */
static json_t *ram_info(const struct tern_mig_stats *s)
{
	json_t *r = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:I,s:I,s:I,s:I,s:I}",
			      "transferred", (json_int_t)s->transferred,
			      "remaining", (json_int_t)s->remaining,
			      "total", (json_int_t)s->total,
			      "duplicate", (json_int_t)s->duplicate,
			      "skipped", (json_int_t)s->skipped,
			      "normal", (json_int_t)s->normal,
			      "normal-bytes", (json_int_t)s->normal_bytes,
			      "dirty-pages-rate", (json_int_t)s->dirty_pages_rate,
			      "mbps", s->mbps,
			      "dirty-sync-count", (json_int_t)s->dirty_sync_count,
			      "page-size", (json_int_t)4096,
			      "pages-per-second", (json_int_t)s->pages_per_second,
			      "postcopy-requests", (json_int_t)0,
			 "x-bulk-deferred", (json_int_t)s->bulk_deferred);
	json_object_set_new(r, "multifd-bytes", json_integer(0));
	json_object_set_new(r, "precopy-bytes", json_integer((json_int_t)s->precopy_bytes));
	json_object_set_new(r, "downtime-bytes", json_integer((json_int_t)s->downtime_bytes));
	json_object_set_new(r, "postcopy-bytes", json_integer(0));
	json_object_set_new(r, "dirty-sync-missed-zero-copy", json_integer(0));
	return r;
}

static json_t *xbzrle_info(const struct tern_mig_stats *s)
{
	return json_pack("{s:I,s:I,s:I,s:I,s:f,s:f,s:I}",
			 "cache-size", (json_int_t)s->xbzrle_cache_size,
			 "bytes", (json_int_t)s->xbzrle_bytes,
			 "pages", (json_int_t)s->xbzrle_pages,
			 "cache-miss", (json_int_t)s->xbzrle_cache_miss,
			 "cache-miss-rate", s->xbzrle_cache_miss_rate,
			 "encoding-rate", s->xbzrle_encoding_rate,
			 "overflow", (json_int_t)s->xbzrle_overflow);
}

/* A live update: its status, downtime and the parts of it (tern's own
 * "x-cpr" member). */
static json_t *cpr_info(const struct cpr_report *c)
{
	json_t *r = json_pack("{s:s,s:s}", "status", tern_mig_status_name(c->status), "mode",
			      vm_migration_mode_name(c->mode));
	if (c->status == TERN_MIG_COMPLETED) {
		json_object_set_new(r, "downtime", json_integer((json_int_t)(c->downtime_us / 1000)));
		json_object_set_new(r, "total-time",
				    json_integer((json_int_t)(c->downtime_us / 1000)));
		json_object_set_new(r, "x-cpr",
				    json_pack("{s:I,s:I,s:I,s:I,s:I,s:b,s:I,s:I,s:I}",
					      "downtime-us", (json_int_t)c->downtime_us,
					      "save-us", (json_int_t)c->save_us,
					      "transfer-us", (json_int_t)c->transfer_us,
					      "load-us", (json_int_t)c->load_us,
					      "memslots-us", (json_int_t)c->memslots_us,
					      "address-space-kept", c->address_space_kept,
					      "fds", (json_int_t)c->fds,
					      "state-bytes", (json_int_t)c->state_bytes,
					      "ram-bytes-copied", (json_int_t)0));
	}
	if (c->status == TERN_MIG_FAILED && c->error[0] != '\0')
		json_object_set_new(r, "error-desc", json_string(c->error));
	return r;
}

/* Where an incoming migration listens, as QEMU's socket-address: the real
 * port of a tcp:HOST:0.  NULL when it does not listen. */
static json_t *socket_address(const struct vm_migration *m)
{
	char host[INET6_ADDRSTRLEN], port[16];
	const struct sockaddr_storage *a = &m->in_addr;
	json_t *one = NULL;
	if (m->in_addr_len == 0)
		return NULL;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)a;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
		snprintf(port, sizeof port, "%u", ntohs(in->sin_port));
		one = json_pack("{s:s,s:s,s:s,s:b}", "type", "inet", "host", host, "port", port,
				"ipv4", 1);
	} else if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)a;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
		snprintf(port, sizeof port, "%u", ntohs(in6->sin6_port));
		one = json_pack("{s:s,s:s,s:s,s:b}", "type", "inet", "host", host, "port", port,
				"ipv6", 1);
	} else if (a->ss_family == AF_UNIX) {
		const struct sockaddr_un *un = (const void *)a;
		size_t n = m->in_addr_len - offsetof(struct sockaddr_un, sun_path);
		n = strnlen(un->sun_path, n < sizeof un->sun_path ? n : sizeof un->sun_path);
		one = json_pack("{s:s,s:s%}", "type", "unix", "path", un->sun_path, n);
	}
	return one != NULL ? json_pack("[o]", one) : NULL;
}

static int cmd_query_migrate(void *opaque, json_t *args, json_t **ret, struct tern_error *err)
{
	(void)args;
	(void)err;
	struct vm_migration *m = opaque;
	struct tern_mig_stats s;
	int incoming;
	if (m->cpr.used) {
		*ret = cpr_info(&m->cpr);
		return 0;
	}
	json_t *r = json_object();
	*ret = r;
	if (!vm_migration_stats(m, &s, &incoming))
		return 0; /* none yet: {} as QEMU */
	/* The stop at the switchover is part of `active` in QEMU 7.2 (its
	 * `device` status comes only with pause-before-switchover). */
	enum tern_mig_status shown = s.status == TERN_MIG_DEVICE ? TERN_MIG_ACTIVE : s.status;
	json_object_set_new(r, "status", json_string(tern_mig_status_name(shown)));
	json_t *where = incoming && (s.status == TERN_MIG_SETUP || s.status == TERN_MIG_ACTIVE)
				? socket_address(m)
				: NULL;
	if (where != NULL) /* as QEMU: while it is under way */
		json_object_set_new(r, "socket-address", where);
	if (s.status == TERN_MIG_NONE || s.status == TERN_MIG_SETUP)
		return 0;
	int done = s.status == TERN_MIG_COMPLETED;
	int running = s.status == TERN_MIG_ACTIVE || s.status == TERN_MIG_DEVICE;
	json_object_set_new(r, "total-time", json_integer((json_int_t)s.total_time_ms));
	if (!incoming) {
		json_object_set_new(r, "setup-time", json_integer((json_int_t)s.setup_time_ms));
		if (done)
			json_object_set_new(r, "downtime", json_integer((json_int_t)s.downtime_ms));
		if (done) /* tern's own: where the downtime went */
			json_object_set_new(r, "x-downtime",
					    json_pack("{s:I,s:I,s:I,s:I,s:I}", "stop-us",
						      (json_int_t)s.stop_us, "sync-us",
						      (json_int_t)s.sync_us, "pages-us",
						      (json_int_t)s.pages_us, "state-us",
						      (json_int_t)s.state_us, "handshake-us",
						      (json_int_t)s.handshake_us));
		if (running)
			json_object_set_new(r, "expected-downtime",
					    json_integer((json_int_t)s.expected_downtime_ms));
	}
	json_object_set_new(r, "ram", ram_info(&s));
	if (!incoming && m->out.params.xbzrle)
		json_object_set_new(r, "xbzrle-cache", xbzrle_info(&s));
	if (m->out.params.xbzrle || s.delta_pages) /* tern's own: not in QEMU */
		json_object_set_new(r, "x-block-delta",
				    json_pack("{s:I,s:I,s:I}", "pages", (json_int_t)s.delta_pages,
					      "bytes", (json_int_t)s.delta_bytes, "digest-bytes",
					      (json_int_t)s.digest_bytes));
	if (!incoming && running && s.throttle_percent)
		json_object_set_new(r, "cpu-throttle-percentage",
				    json_integer((json_int_t)s.throttle_percent));
	if (s.status == TERN_MIG_FAILED && s.error[0] != '\0')
		json_object_set_new(r, "error-desc", json_string(s.error));
	return 0;
}

static const struct qmp_arg migrate_args[] = {
	{ "uri", QMP_STR, 0 },
	{ "blk", QMP_BOOL, 1 },
	{ "inc", QMP_BOOL, 1 },
	{ "detach", QMP_BOOL, 1 },
	{ "resume", QMP_BOOL, 1 },
	{ NULL, QMP_ANY, 0 },
};

static const struct qmp_arg incoming_args[] = {
	{ "uri", QMP_STR, 0 },
	{ NULL, QMP_ANY, 0 },
};

static const struct qmp_command migration_commands[] = {
	{ "migrate", cmd_migrate, migrate_args },
	{ "migrate_cancel", cmd_migrate_cancel, NULL },
	{ "migrate-incoming", cmd_migrate_incoming, incoming_args },
	{ "query-migrate", cmd_query_migrate, NULL },
	{ NULL, NULL, NULL },
};

static void on_status(void *opaque, enum tern_mig_status status)
{
	struct qmp_server *s = opaque;
	qmp_server_event(s, "MIGRATION", json_pack("{s:s}", "status", tern_mig_status_name(status)));
}

static void on_pass(void *opaque, uint64_t pass)
{
	qmp_server_event(opaque, "MIGRATION_PASS", json_pack("{s:I}", "pass", (json_int_t)pass));
}

int migration_qmp_register(struct qmp_server *s, struct vm_migration *m)
{
	m->on_status = on_status;
	m->on_pass = on_pass;
	m->status_opaque = s;
	int rc = qmp_server_add_commands(s, migration_commands, m);
	return rc < 0 ? rc : migration_params_qmp_register(s, m);
}
