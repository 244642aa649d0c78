/*
 * QMP commands for migration, in QEMU's names and shapes: migrate,
 * migrate_cancel, migrate-incoming, query-migrate, migrate-set-capabilities,
 * query-migrate-capabilities, migrate-set-parameters,
 * query-migrate-parameters, and the MIGRATION event.
 */
#include "qmp/migration_qmp.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define DOWNTIME_LIMIT_MAX 2000000 /* ms, as QEMU */
#define XBZRLE_CACHE_MIN (8 * 4096)

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

static json_t *ram_info(const struct tern_mig_stats *s)
{
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:I,s:I,s:I,s:I,s:I}",
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
	json_object_set_new(r, "status", json_string(tern_mig_status_name(s.status)));
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

/* ---------------------------------------------------------------- capabilities */

/* QEMU's other capabilities, accepted only when off. */
static const char *const foreign_caps[] = {
	"rdma-pin-all", "zero-blocks", "compress", "postcopy-ram", "x-colo", "release-ram",
	"block", "return-path", "pause-before-switchover", "multifd", "dirty-bitmaps",
	"postcopy-blocktime", "late-block-activate", "x-ignore-shared", "validate-uuid",
	"background-snapshot", "zero-copy-send", "postcopy-preempt", NULL,
};

static int *capability(struct vm_migration *m, const char *name)
{
	if (strcmp(name, "xbzrle") == 0)
		return &m->params.xbzrle;
	if (strcmp(name, "auto-converge") == 0)
		return &m->params.auto_converge;
	if (strcmp(name, "events") == 0)
		return &m->events;
	return NULL;
}

static int cmd_set_capabilities(void *opaque, json_t *args, json_t **ret,
				struct tern_error *err)
{
	(void)ret;
	struct vm_migration *m = opaque;
	json_t *list = json_object_get(args, "capabilities");
	if (!json_is_array(list))
		return tern_errorf(err, -EINVAL, "Invalid parameter type for 'capabilities', "
				   "expected: array");
	if (vm_migration_busy(m))
		return tern_errorf(err, -EBUSY, "There's a migration process in progress");
	/* Check all, then apply all: a bad entry changes nothing. */
	size_t i;
	json_t *item;
	json_array_foreach(list, i, item) {
		const char *name = json_string_value(json_object_get(item, "capability"));
		json_t *state = json_object_get(item, "state");
		if (!json_is_object(item) || name == NULL || !json_is_boolean(state) ||
		    json_object_size(item) != 2)
			return tern_errorf(err, -EINVAL, "capabilities[%zu]: expected "
					   "{\"capability\": NAME, \"state\": BOOL}", i);
		if (capability(m, name) != NULL)
			continue;
		int foreign = 0;
		for (const char *const *f = foreign_caps; *f != NULL; f++)
			foreign |= strcmp(*f, name) == 0;
		if (!foreign)
			return tern_errorf(err, -EINVAL, "Parameter 'capability' does not accept "
					   "value '%.64s'", name);
		if (json_is_true(state))
			return tern_errorf(err, -ENOTSUP, "tern does not offer the migration "
					   "capability '%s' (it offers xbzrle, auto-converge, events)",
					   name);
	}
	json_array_foreach(list, i, item) {
		int *cap = capability(m, json_string_value(json_object_get(item, "capability")));
		if (cap != NULL)
			*cap = json_is_true(json_object_get(item, "state"));
	}
	return 0;
}

static int cmd_query_capabilities(void *opaque, json_t *args, json_t **ret,
				  struct tern_error *err)
{
	(void)args;
	(void)err;
	struct vm_migration *m = opaque;
	*ret = json_pack("[{s:s,s:b},{s:s,s:b},{s:s,s:b}]",
			 "capability", "xbzrle", "state", m->params.xbzrle,
			 "capability", "auto-converge", "state", m->params.auto_converge,
			 "capability", "events", "state", m->events);
	return 0;
}

/* ---------------------------------------------------------------- parameters */

static int get_range(json_t *args, const char *name, json_int_t lo, json_int_t hi,
		     const char *unit, json_int_t *out, struct tern_error *err)
{
	json_t *v = json_object_get(args, name);
	if (v == NULL)
		return 0;
	json_int_t n = json_integer_value(v);
	if (n < lo || n > hi)
		return tern_errorf(err, -EINVAL, "Parameter '%s' expects an integer in the range "
				   "of %lld to %lld%s", name, (long long)lo, (long long)hi, unit);
	*out = n;
	return 1;
}

/* cpr-exec-command: a list of up to CPR_EXEC_ARGS_MAX strings, the program
 * first; empty (as query-migrate-parameters shows it unset) unsets it. */
static int exec_command(json_t *cmd, char **argv, struct tern_error *err)
{
	size_t n = json_array_size(cmd);
	if (!json_is_array(cmd) || n > CPR_EXEC_ARGS_MAX)
		return tern_errorf(err, -EINVAL, "Parameter 'cpr-exec-command' expects a list of 0 "
				   "to %d strings, the program first", CPR_EXEC_ARGS_MAX);
	for (size_t i = 0; i < n; i++) {
		const char *a = json_string_value(json_array_get(cmd, i));
		if (a == NULL || (i == 0 && a[0] == '\0') || (argv[i] = strdup(a)) == NULL) {
			for (size_t j = 0; j < i; j++)
				free(argv[j]);
			return tern_errorf(err, -EINVAL, "Parameter 'cpr-exec-command': element %zu "
					   "is not a usable string", i);
		}
	}
	return 0;
}

static int cmd_set_parameters(void *opaque, json_t *args, json_t **ret, struct tern_error *err)
{
	(void)ret;
	struct vm_migration *m = opaque;
	struct tern_mig_params p = m->params;
	json_int_t v;
	int rc;
	/* Check all, then apply all. */
	if ((rc = get_range(args, "downtime-limit", 0, DOWNTIME_LIMIT_MAX, " milliseconds", &v,
			    err)) < 0)
		return rc;
	if (rc)
		p.downtime_limit_ms = (uint64_t)v;
	if ((rc = get_range(args, "max-bandwidth", 0, INT64_MAX, " bytes/second", &v, err)) < 0)
		return rc;
	if (rc)
		p.max_bandwidth = (uint64_t)v;
	if ((rc = get_range(args, "xbzrle-cache-size", XBZRLE_CACHE_MIN, INT64_MAX, " bytes", &v,
			    err)) < 0)
		return rc;
	if (rc)
		p.xbzrle_cache_size = (uint64_t)v;
	if ((rc = get_range(args, "cpu-throttle-initial", 1, 99, "", &v, err)) < 0)
		return rc;
	if (rc)
		p.throttle_initial = (unsigned)v;
	if ((rc = get_range(args, "cpu-throttle-increment", 1, 99, "", &v, err)) < 0)
		return rc;
	if (rc)
		p.throttle_increment = (unsigned)v;
	if ((rc = get_range(args, "max-cpu-throttle", 1, 99, "", &v, err)) < 0)
		return rc;
	if (rc)
		p.throttle_max = (unsigned)v;
	uint32_t cpr_timeout = m->cpr_timeout_ms;
	if ((rc = get_range(args, "x-cpr-timeout", CPR_TIMEOUT_MIN_MS, CPR_TIMEOUT_MAX_MS,
			    " milliseconds", &v, err)) < 0)
		return rc;
	if (rc)
		cpr_timeout = (uint32_t)v;
	enum vm_migration_mode mode = m->mode;
	json_t *jmode = json_object_get(args, "mode");
	if (jmode != NULL) {
		const char *name = json_string_value(jmode);
		if (strcmp(name, "normal") == 0)
			mode = MIG_MODE_NORMAL;
		else if (strcmp(name, "cpr-exec") == 0)
			mode = MIG_MODE_CPR_EXEC;
		else if (strcmp(name, "cpr-transfer") == 0)
			mode = MIG_MODE_CPR_TRANSFER;
		else
			return tern_errorf(err, -EINVAL, "Parameter 'mode' does not accept value '%s' "
					   "(normal, cpr-exec, cpr-transfer)", name);
	}
	char *argv[CPR_EXEC_ARGS_MAX + 1] = { 0 };
	json_t *cmd = json_object_get(args, "cpr-exec-command");
	if (cmd != NULL && (rc = exec_command(cmd, argv, err)) < 0)
		return rc;
	if (cmd != NULL) {
		for (unsigned i = 0; m->cpr_exec_argv[i] != NULL; i++)
			free(m->cpr_exec_argv[i]);
		memcpy(m->cpr_exec_argv, argv, sizeof argv);
	}
	m->mode = mode;
	m->cpr_timeout_ms = cpr_timeout;
	m->params = p;
	vm_migration_params_changed(m);
	return 0;
}

static int cmd_query_parameters(void *opaque, json_t *args, json_t **ret,
				struct tern_error *err)
{
	(void)args;
	(void)err;
	struct vm_migration *m = opaque;
	const struct tern_mig_params *p = &m->params;
	*ret = json_pack("{s:I,s:I,s:I,s:i,s:i,s:i,s:s}",
			 "downtime-limit", (json_int_t)p->downtime_limit_ms,
			 "max-bandwidth", (json_int_t)p->max_bandwidth,
			 "xbzrle-cache-size", (json_int_t)p->xbzrle_cache_size,
			 "cpu-throttle-initial", (int)p->throttle_initial,
			 "cpu-throttle-increment", (int)p->throttle_increment,
			 "max-cpu-throttle", (int)p->throttle_max,
			 "mode", vm_migration_mode_name(m->mode));
	json_t *cmd = json_array();
	for (unsigned i = 0; m->cpr_exec_argv[i] != NULL; i++)
		json_array_append_new(cmd, json_string(m->cpr_exec_argv[i]));
	json_object_set_new(*ret, "cpr-exec-command", cmd);
	json_object_set_new(*ret, "x-cpr-timeout", json_integer(m->cpr_timeout_ms));
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

static const struct qmp_arg capabilities_args[] = {
	{ "capabilities", QMP_ANY, 0 },
	{ NULL, QMP_ANY, 0 },
};

static const struct qmp_arg parameters_args[] = {
	{ "downtime-limit", QMP_INT, 1 },
	{ "max-bandwidth", QMP_INT, 1 },
	{ "xbzrle-cache-size", QMP_INT, 1 },
	{ "cpu-throttle-initial", QMP_INT, 1 },
	{ "cpu-throttle-increment", QMP_INT, 1 },
	{ "max-cpu-throttle", QMP_INT, 1 },
	{ "mode", QMP_STR, 1 },
	{ "cpr-exec-command", QMP_ANY, 1 },
	{ "x-cpr-timeout", QMP_INT, 1 },
	{ NULL, QMP_ANY, 0 },
};

static const struct qmp_command migration_commands[] = {
	{ "migrate", cmd_migrate, migrate_args },
	{ "migrate_cancel", cmd_migrate_cancel, NULL },
	{ "migrate-incoming", cmd_migrate_incoming, incoming_args },
	{ "query-migrate", cmd_query_migrate, NULL },
	{ "migrate-set-capabilities", cmd_set_capabilities, capabilities_args },
	{ "query-migrate-capabilities", cmd_query_capabilities, NULL },
	{ "migrate-set-parameters", cmd_set_parameters, parameters_args },
	{ "query-migrate-parameters", cmd_query_parameters, NULL },
	{ NULL, NULL, NULL },
};

static void on_status(void *opaque, enum tern_mig_status status)
{
	struct qmp_server *s = opaque;
	qmp_server_event(s, "MIGRATION", json_pack("{s:s}", "status", tern_mig_status_name(status)));
}

int migration_qmp_register(struct qmp_server *s, struct vm_migration *m)
{
	m->on_status = on_status;
	m->status_opaque = s;
	return qmp_server_add_commands(s, migration_commands, m);
}
