/*
 * migrate-set-capabilities, query-migrate-capabilities,
 * migrate-set-parameters and query-migrate-parameters: every name QEMU 7.2
 * takes.  What tern does is honoured; what changes nothing here (there is
 * no TLS, compression, postcopy or network card to announce) is kept and
 * shown as QEMU shows it; what tern cannot do is refused saying so.  Each
 * set command checks everything before it changes anything, and takes
 * back whatever the query shows (a live update carries the settings that
 * way: vmm/cpr/cpr_settings.c).
 */
#include "qmp/migration_params_qmp.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define DOWNTIME_LIMIT_MAX 2000000 /* ms, as QEMU */
#define XBZRLE_CACHE_MIN (8 * 4096)

/* ---------------------------------------------------------------- capabilities */

/* QEMU 7.2's, in its order; tern's own three, and why not the others. */
static const struct capability {
	const char *name;
	const char *not_here; /* NULL: tern's */
} capabilities[] = {
	{ "xbzrle", NULL },
	{ "rdma-pin-all", "tern does not migrate over RDMA" },
	{ "auto-converge", NULL },
	{ "zero-blocks", "tern has no block migration" },
	{ "compress", "tern does not compress pages (zero pages, XBZRLE and block deltas "
		      "keep the stream small)" },
	{ "events", NULL },
	{ "postcopy-ram", "tern migrates by precopy only (no postcopy)" },
	{ "x-colo", "tern has no COLO" },
	{ "release-ram", "tern migrates by precopy only (no postcopy)" },
	{ "block", "tern has no block migration" },
	{ "return-path", "tern's sockets always answer (READY/GO); there is no other return "
			 "path to turn on" },
	{ "pause-before-switchover", "tern does not pause before the switchover (no "
				     "migrate-continue)" },
	{ "multifd", "tern migrates over one channel (no multifd)" },
	{ "dirty-bitmaps", "tern has no block dirty bitmaps to migrate" },
	{ "postcopy-blocktime", "tern migrates by precopy only (no postcopy)" },
	{ "late-block-activate", "tern has no block devices to activate late" },
	{ "x-ignore-shared", "tern migrates all of guest RAM" },
	{ "validate-uuid", "tern's guests have no UUID to validate" },
	{ "background-snapshot", "tern has no background snapshots" },
	{ "zero-copy-send", "tern migrates over one channel (no multifd, so no zero copy)" },
	{ "postcopy-preempt", "tern migrates by precopy only (no postcopy)" },
};
#define NCAPS (sizeof capabilities / sizeof capabilities[0])

static int *capability_state(struct vm_migration *m, const char *name)
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
		const struct capability *c = NULL;
		for (size_t k = 0; k < NCAPS && c == NULL; k++)
			if (strcmp(capabilities[k].name, name) == 0)
				c = &capabilities[k];
		if (c == NULL)
			return tern_errorf(err, -EINVAL, "Parameter 'capability' does not accept "
					   "value '%.64s'", name);
		if (c->not_here != NULL && json_is_true(state))
			return tern_errorf(err, -ENOTSUP, "tern does not offer the migration "
					   "capability '%s': %s (it offers xbzrle, auto-converge, "
					   "events)", name, c->not_here);
	}
	json_array_foreach(list, i, item) {
		int *cap = capability_state(m, json_string_value(json_object_get(item, "capability")));
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
	json_t *list = json_array();
	for (size_t k = 0; k < NCAPS; k++) {
		int *state = capability_state(m, capabilities[k].name);
		json_array_append_new(list, json_pack("{s:s,s:b}", "capability", capabilities[k].name,
						      "state", state != NULL && *state));
	}
	*ret = list;
	return 0;
}

/* ---------------------------------------------------------------- parameters */

enum kind {
	HONOURED, /* tern acts on it: a field of struct tern_mig_params or tern's own */
	STORED,   /* changes nothing here: kept in m->stored.value[slot] */
	ONLY,     /* tern's one value (def); another is refused with `why` */
	NO_TLS,   /* "" or null: no TLS */
	MULTIFD_COMPRESSION,
	BITMAP_MAPPING, /* [] only: no block dirty bitmaps; shown once set */
};

enum field { F_DOWNTIME, F_BANDWIDTH, F_CACHE, F_THROTTLE_INIT, F_THROTTLE_INC, F_THROTTLE_MAX,
	     F_CPR_TIMEOUT };

static const struct param {
	const char *name;
	enum qmp_arg_type type;
	enum kind kind;
	int slot; /* STORED: m->stored's index; HONOURED: an enum field */
	int64_t lo, hi, def;
	const char *unit;
	const char *why; /* ONLY: what tern does instead */
} params[] = {
	/* QEMU 7.2's, in its order */
	{ "announce-initial", QMP_INT, STORED, 0, 0, 100000, 50, " ms", NULL },
	{ "announce-max", QMP_INT, STORED, 1, 0, 100000, 550, " ms", NULL },
	{ "announce-rounds", QMP_INT, STORED, 2, 0, 1000, 5, "", NULL },
	{ "announce-step", QMP_INT, STORED, 3, 1, 10000, 100, " ms", NULL },
	{ "compress-level", QMP_INT, STORED, 4, 0, 9, 1, "", NULL },
	{ "compress-threads", QMP_INT, STORED, 5, 1, 255, 8, "", NULL },
	{ "compress-wait-thread", QMP_BOOL, STORED, 6, 0, 1, 1, "", NULL },
	{ "decompress-threads", QMP_INT, STORED, 7, 1, 255, 2, "", NULL },
	{ "throttle-trigger-threshold", QMP_INT, ONLY, 0, 1, 100, 50, "",
	  "tern's auto-converge throttles once the guest dirties more than half of what a "
	  "round sent, twice running: it takes no other threshold" },
	{ "cpu-throttle-initial", QMP_INT, HONOURED, F_THROTTLE_INIT, 1, 99, 20, "", NULL },
	{ "cpu-throttle-increment", QMP_INT, HONOURED, F_THROTTLE_INC, 1, 99, 10, "", NULL },
	{ "cpu-throttle-tailslow", QMP_BOOL, ONLY, 0, 0, 1, 0, "",
	  "tern's auto-converge has no tailslow: leave it false" },
	{ "tls-creds", QMP_ANY, NO_TLS, 0, 0, 0, 0, "", NULL },
	{ "tls-hostname", QMP_ANY, NO_TLS, 0, 0, 0, 0, "", NULL },
	{ "tls-authz", QMP_ANY, NO_TLS, 0, 0, 0, 0, "", NULL },
	{ "max-bandwidth", QMP_INT, HONOURED, F_BANDWIDTH, 0, INT64_MAX, 0, " bytes/second",
	  NULL },
	{ "downtime-limit", QMP_INT, HONOURED, F_DOWNTIME, 0, DOWNTIME_LIMIT_MAX, 300,
	  " milliseconds", NULL },
	{ "x-checkpoint-delay", QMP_INT, STORED, 8, 0, UINT32_MAX, 20000, " ms", NULL },
	{ "block-incremental", QMP_BOOL, STORED, 9, 0, 1, 0, "", NULL },
	{ "multifd-channels", QMP_INT, ONLY, 0, 1, 255, 1, "",
	  "tern migrates over one channel (no multifd): it must be 1" },
	{ "xbzrle-cache-size", QMP_INT, HONOURED, F_CACHE, XBZRLE_CACHE_MIN, INT64_MAX, 0,
	  " bytes", NULL },
	{ "max-postcopy-bandwidth", QMP_INT, STORED, 10, 0, INT64_MAX, 0, " bytes/second", NULL },
	{ "max-cpu-throttle", QMP_INT, HONOURED, F_THROTTLE_MAX, 1, 99, 99, "", NULL },
	{ "multifd-compression", QMP_STR, MULTIFD_COMPRESSION, 0, 0, 0, 0, "", NULL },
	{ "multifd-zlib-level", QMP_INT, STORED, 11, 0, 9, 1, "", NULL },
	{ "multifd-zstd-level", QMP_INT, STORED, 12, 0, 20, 1, "", NULL },
	{ "block-bitmap-mapping", QMP_ANY, BITMAP_MAPPING, 13, 0, 0, 0, "", NULL },
	/* tern's own */
	{ "x-cpr-timeout", QMP_INT, HONOURED, F_CPR_TIMEOUT, CPR_TIMEOUT_MIN_MS, CPR_TIMEOUT_MAX_MS,
	  CPR_TIMEOUT_DEFAULT_MS, " milliseconds", NULL },
};
#define NPARAMS (sizeof params / sizeof params[0])

_Static_assert(13 < sizeof(((struct vm_migration_stored *)0)->value) / sizeof(int64_t),
	       "room for every stored parameter");

/* The honoured ones, where tern keeps them. */
static int64_t honoured_get(const struct vm_migration *m, const struct tern_mig_params *p,
			    int field)
{
	switch ((enum field)field) {
	case F_DOWNTIME: return (int64_t)p->downtime_limit_ms;
	case F_BANDWIDTH: return (int64_t)p->max_bandwidth;
	case F_CACHE: return (int64_t)p->xbzrle_cache_size;
	case F_THROTTLE_INIT: return p->throttle_initial;
	case F_THROTTLE_INC: return p->throttle_increment;
	case F_THROTTLE_MAX: return p->throttle_max;
	case F_CPR_TIMEOUT: return m->cpr_timeout_ms;
	}
	return 0;
}

static void honoured_set(struct tern_mig_params *p, uint32_t *cpr_timeout, int field, int64_t v)
{
	switch ((enum field)field) {
	case F_DOWNTIME: p->downtime_limit_ms = (uint64_t)v; break;
	case F_BANDWIDTH: p->max_bandwidth = (uint64_t)v; break;
	case F_CACHE: p->xbzrle_cache_size = (uint64_t)v; break;
	case F_THROTTLE_INIT: p->throttle_initial = (unsigned)v; break;
	case F_THROTTLE_INC: p->throttle_increment = (unsigned)v; break;
	case F_THROTTLE_MAX: p->throttle_max = (unsigned)v; break;
	case F_CPR_TIMEOUT: *cpr_timeout = (uint32_t)v; break;
	}
}

/* One parameter's value, checked; stored/honoured into the copies. */
static int take(const struct param *d, json_t *v, struct tern_mig_params *p, uint32_t *cpr_timeout,
		struct vm_migration_stored *st, struct tern_error *err)
{
	int64_t n = json_is_boolean(v) ? json_is_true(v) : json_integer_value(v);
	if (d->type == QMP_INT && (n < d->lo || n > d->hi))
		return tern_errorf(err, -EINVAL, "Parameter '%s' expects an integer in the range "
				   "of %lld to %lld%s", d->name, (long long)d->lo, (long long)d->hi,
				   d->unit);
	switch (d->kind) {
	case HONOURED:
		honoured_set(p, cpr_timeout, d->slot, n);
		return 0;
	case STORED:
		st->value[d->slot] = n;
		st->set |= 1ULL << d->slot;
		return 0;
	case ONLY:
		if (n != d->def)
			return tern_errorf(err, -ENOTSUP, "Parameter '%s': %s", d->name, d->why);
		return 0;
	case NO_TLS:
		if (!json_is_null(v) && !json_is_string(v))
			return tern_errorf(err, -EINVAL, "Invalid parameter type for '%s', expected: "
					   "string or null", d->name);
		if (json_is_string(v) && json_string_length(v) != 0)
			return tern_errorf(err, -ENOTSUP, "Parameter '%s': tern does not migrate over "
					   "TLS; leave it \"\" or null (tunnel the migration, over "
					   "ssh for one, where it needs protecting)", d->name);
		return 0;
	case MULTIFD_COMPRESSION: {
		const char *s = json_string_value(v);
		if (strcmp(s, "none") != 0 && strcmp(s, "zlib") != 0 && strcmp(s, "zstd") != 0)
			return tern_errorf(err, -EINVAL, "Parameter '%s' does not accept value "
					   "'%.64s'", d->name, s);
		if (strcmp(s, "none") != 0)
			return tern_errorf(err, -ENOTSUP, "Parameter '%s': tern has no multifd, so "
					   "no multifd compression: leave it 'none'", d->name);
		return 0;
	}
	case BITMAP_MAPPING:
		if (!json_is_array(v))
			return tern_errorf(err, -EINVAL, "Invalid parameter type for '%s', expected: "
					   "array", d->name);
		if (json_array_size(v) != 0)
			return tern_errorf(err, -ENOTSUP, "Parameter '%s': tern has no block dirty "
					   "bitmaps to map; it takes only []", d->name);
		st->set |= 1ULL << d->slot;
		return 0;
	}
	return 0;
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
	uint32_t cpr_timeout = m->cpr_timeout_ms;
	struct vm_migration_stored st = m->stored;
	/* Check all, then apply all. */
	for (size_t i = 0; i < NPARAMS; i++) {
		json_t *v = json_object_get(args, params[i].name);
		int rc = v != NULL ? take(&params[i], v, &p, &cpr_timeout, &st, err) : 0;
		if (rc < 0)
			return rc;
	}
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
			return tern_errorf(err, -EINVAL, "Parameter 'mode' does not accept value "
					   "'%.64s' (normal, cpr-exec, cpr-transfer)", name);
	}
	char *argv[CPR_EXEC_ARGS_MAX + 1] = { 0 };
	json_t *cmd = json_object_get(args, "cpr-exec-command");
	int rc;
	if (cmd != NULL && (rc = exec_command(cmd, argv, err)) < 0)
		return rc;
	if (cmd != NULL) {
		for (unsigned i = 0; m->cpr_exec_argv[i] != NULL; i++)
			free(m->cpr_exec_argv[i]);
		memcpy(m->cpr_exec_argv, argv, sizeof argv);
	}
	m->mode = mode;
	m->cpr_timeout_ms = cpr_timeout;
	m->stored = st;
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
	json_t *r = json_object();
	for (size_t i = 0; i < NPARAMS; i++) {
		const struct param *d = &params[i];
		int64_t n = d->def;
		json_t *v = NULL;
		switch (d->kind) {
		case HONOURED: n = honoured_get(m, &m->params, d->slot); break;
		case STORED:
			if (m->stored.set >> d->slot & 1)
				n = m->stored.value[d->slot];
			break;
		case ONLY: break;
		case NO_TLS: v = json_string(""); break; /* as QEMU shows "no TLS" */
		case MULTIFD_COMPRESSION: v = json_string("none"); break;
		case BITMAP_MAPPING:
			if (!(m->stored.set >> d->slot & 1))
				continue; /* as QEMU: only once set */
			v = json_array();
			break;
		}
		if (v == NULL)
			v = d->type == QMP_BOOL ? json_boolean(n) : json_integer((json_int_t)n);
		json_object_set_new(r, d->name, v);
	}
	json_object_set_new(r, "mode", json_string(vm_migration_mode_name(m->mode)));
	json_t *cmd = json_array();
	for (unsigned i = 0; m->cpr_exec_argv[i] != NULL; i++)
		json_array_append_new(cmd, json_string(m->cpr_exec_argv[i]));
	json_object_set_new(r, "cpr-exec-command", cmd);
	*ret = r;
	return 0;
}

static const struct qmp_arg capabilities_args[] = {
	{ "capabilities", QMP_ANY, 0 },
	{ NULL, QMP_ANY, 0 },
};

/* The parameters' declaration, made from the table (one list). */
static struct qmp_arg parameters_args[NPARAMS + 3];

static const struct qmp_command params_commands[] = {
	{ "migrate-set-capabilities", cmd_set_capabilities, capabilities_args },
	{ "query-migrate-capabilities", cmd_query_capabilities, NULL },
	{ "migrate-set-parameters", cmd_set_parameters, parameters_args },
	{ "query-migrate-parameters", cmd_query_parameters, NULL },
	{ NULL, NULL, NULL },
};

int migration_params_qmp_register(struct qmp_server *s, struct vm_migration *m)
{
	size_t n = 0;
	for (size_t i = 0; i < NPARAMS; i++)
		parameters_args[n++] = (struct qmp_arg){ params[i].name, params[i].type, 1 };
	parameters_args[n++] = (struct qmp_arg){ "mode", QMP_STR, 1 };
	parameters_args[n++] = (struct qmp_arg){ "cpr-exec-command", QMP_ANY, 1 };
	parameters_args[n] = (struct qmp_arg){ NULL, QMP_ANY, 0 };
	return qmp_server_add_commands(s, params_commands, m);
}
