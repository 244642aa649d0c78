/*
 * `tern migrate`: drive a running tern (or QEMU) over its QMP socket: set
 * the capabilities and parameters asked for, start the migration, show
 * its progress and end with query-migrate as a table.
 */
#include "migrate_main.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qmp/qmp_client.h"
#include "tern/parse.h"

#define QMP_TIMEOUT_MS 10000

const char migrate_usage[] =
	"usage: tern migrate --qmp unix:PATH [options] URI\n"
	"\n"
	"Live-migrate the VM behind the QMP socket PATH to URI (tcp:HOST:PORT,\n"
	"unix:PATH, file:PATH, fd:N), showing progress, then query-migrate as a table.\n"
	"\n"
	"      --qmp unix:PATH        the source VM's QMP socket\n"
	"      --xbzrle               send changed pages as XBZRLE deltas\n"
	"      --auto-converge        slow the guest down when it does not converge\n"
	"      --max-bandwidth SIZE   bytes per second (K, M, G suffixes; 0 = unlimited)\n"
	"      --downtime-limit MS    longest pause the guest may see (default 300)\n"
	"      --xbzrle-cache-size SIZE\n"
	"      --interval MS          progress refresh (default 200)\n"
	"  -q, --quiet                no progress, only the final table\n"
	"  -h, --help                 this text\n"
	"\n"
	"Exit status: 0 when the migration completed, 1 when it failed or was\n"
	"cancelled (the reason is printed), 2 for a bad command line.\n";

struct migrate_options {
	const char *qmp, *uri;
	int xbzrle, auto_converge, quiet;
	int64_t max_bandwidth, downtime_limit, cache_size; /* -1: leave as is */
	unsigned interval_ms;
};


static int parse(int argc, char **argv, struct migrate_options *o, struct tern_error *err)
{
	static const struct option longopts[] = {
		{ "qmp", required_argument, NULL, 'Q' },
		{ "xbzrle", no_argument, NULL, 'x' },
		{ "auto-converge", no_argument, NULL, 'a' },
		{ "max-bandwidth", required_argument, NULL, 'b' },
		{ "downtime-limit", required_argument, NULL, 'd' },
		{ "xbzrle-cache-size", required_argument, NULL, 'c' },
		{ "interval", required_argument, NULL, 'i' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	*o = (struct migrate_options){ .max_bandwidth = -1, .downtime_limit = -1,
				       .cache_size = -1, .interval_ms = 200 };
	opterr = 0;
	optind = 0;
	int c;
	while ((c = getopt_long(argc, argv, "+:qh", longopts, NULL)) != -1) {
		uint64_t v;
		int rc = 0;
		switch (c) {
		case 'Q': o->qmp = optarg; break;
		case 'x': o->xbzrle = 1; break;
		case 'a': o->auto_converge = 1; break;
		case 'q': o->quiet = 1; break;
		case 'h': return 1;
		case 'b':
			rc = tern_parse_size(optarg, 0, &v, err);
			o->max_bandwidth = (int64_t)v;
			break;
		case 'c':
			rc = tern_parse_size(optarg, 0, &v, err);
			o->cache_size = (int64_t)v;
			break;
		case 'd':
			if (tern_parse_u64(optarg, &v, NULL) < 0 || v > 2000000)
				rc = tern_errorf(err, -EINVAL, "--downtime-limit '%s': milliseconds, "
						 "0 to 2000000", optarg);
			o->downtime_limit = (int64_t)v;
			break;
		case 'i':
			if (tern_parse_u64(optarg, &v, NULL) < 0 || v < 10 || v > 60000)
				rc = tern_errorf(err, -EINVAL, "--interval '%s': milliseconds, 10 to "
						 "60000", optarg);
			o->interval_ms = (unsigned)v;
			break;
		case ':':
			return tern_errorf(err, -EINVAL, "option '%s' needs a value", argv[optind - 1]);
		default:
			return tern_errorf(err, -EINVAL, "unknown option '%s' (see tern migrate --help)",
					   argv[optind - 1]);
		}
		if (rc < 0)
			return rc;
	}
	if (o->qmp == NULL)
		return tern_errorf(err, -EINVAL, "--qmp unix:PATH is required: the source VM's QMP "
				   "socket");
	if (optind != argc - 1)
		return tern_errorf(err, -EINVAL, "expected one destination URI (see tern migrate "
				   "--help)");
	o->uri = argv[optind];
	return 0;
}

/* ---------------------------------------------------------------- display */

static json_t *member(json_t *info, const char *group, const char *key)
{
	return json_object_get(group ? json_object_get(info, group) : info, key);
}

static double num(json_t *info, const char *group, const char *key)
{
	json_t *v = member(info, group, key);
	return json_is_number(v) ? json_number_value(v) : 0;
}

/* Binary units: "812 MiB", "1.00 GiB". */
static const char *bytes_text(double b, char *buf, size_t len)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int u = 0;
	while (b >= 1024 && u < 4) {
		b /= 1024;
		u++;
	}
	snprintf(buf, len, u == 0 ? "%.0f %s" : b < 10 ? "%.2f %s" : b < 100 ? "%.1f %s" : "%.0f %s",
		 b, unit[u]);
	return buf;
}

/* Thousands separated: "262,423". */
static const char *count_text(double v, char *buf, size_t len)
{
	char digits[32];
	snprintf(digits, sizeof digits, "%.0f", v);
	size_t n = strlen(digits), o = 0;
	for (size_t i = 0; i < n && o + 2 < len; i++) {
		if (i > 0 && (n - i) % 3 == 0)
			buf[o++] = ',';
		buf[o++] = digits[i];
	}
	buf[o] = '\0';
	return buf;
}

/*
 * The rate the stream moves at, from transferred bytes over total-time
 * (both VMMs' own clock), over windows of at least 500 ms: query-migrate's
 * mbps is no such figure (tern's is its estimate of the link that it plans
 * the switchover with, 0 until the bulk stage ends; QEMU's the last 100 ms).
 */
struct rate {
	double bytes, ms, gbps;
};

static double rate_update(struct rate *r, json_t *info)
{
	double bytes = num(info, "ram", "transferred"), ms = num(info, NULL, "total-time");
	if (ms > r->ms && (ms - r->ms >= 500 || r->gbps == 0)) {
		r->gbps = (bytes - r->bytes) * 8 / (ms - r->ms) / 1e6;
		r->bytes = bytes;
		r->ms = ms;
	}
	return r->gbps;
}

static void progress(json_t *info, int tty, double gbps)
{
	char a[32], b[32], c[32];
	const char *status = json_string_value(json_object_get(info, "status"));
	fprintf(stdout, "%s  %-9s %6.2f s | sent %9s | left %9s | %5.2f Gbit/s | dirty %s pages/s "
		"| syncs %.0f | downtime est. %.0f ms%s", tty ? "\r" : "", status ? status : "?",
		num(info, NULL, "total-time") / 1000, bytes_text(num(info, "ram", "transferred"), a,
								 sizeof a),
		bytes_text(num(info, "ram", "remaining"), b, sizeof b), gbps,
		count_text(num(info, "ram", "dirty-pages-rate"), c, sizeof c),
		num(info, "ram", "dirty-sync-count"), num(info, NULL, "expected-downtime"),
		tty ? "\033[K" : "\n");
	fflush(stdout);
}

static void row(const char *name, const char *value)
{
	printf("  %-22s %s\n", name, value);
}

static void row_ms(const char *name, json_t *info, const char *key)
{
	json_t *v = json_object_get(info, key);
	if (!json_is_integer(v))
		return;
	char buf[32];
	snprintf(buf, sizeof buf, "%lld ms", (long long)json_integer_value(v));
	row(name, buf);
}

static void table(json_t *info)
{
	char a[32], b[32], line[96];
	const char *status = json_string_value(json_object_get(info, "status"));
	printf("\nmigration %s\n", status ? status : "(no status)");
	row_ms("total time", info, "total-time");
	row_ms("downtime", info, "downtime");
	row_ms("setup time", info, "setup-time");
	if (json_object_get(info, "ram") != NULL) {
		row("transferred", bytes_text(num(info, "ram", "transferred"), a, sizeof a));
		row("guest RAM", bytes_text(num(info, "ram", "total"), a, sizeof a));
		row("zero pages", count_text(num(info, "ram", "duplicate"), a, sizeof a));
		snprintf(line, sizeof line, "%s (%s)", count_text(num(info, "ram", "normal"), a, sizeof a),
			 bytes_text(num(info, "ram", "normal-bytes"), b, sizeof b));
		row("whole pages", line);
		row("unchanged, not sent", count_text(num(info, "ram", "skipped"), a, sizeof a));
		row("dirty syncs", count_text(num(info, "ram", "dirty-sync-count"), a, sizeof a));
		/* The average while sending (QEMU's mbps once completed), and
		 * the VMM's own last figure, which for tern is its estimate. */
		double ms = num(info, NULL, "total-time") - num(info, NULL, "setup-time");
		if (ms > 0) {
			double bytes = num(info, "ram", "transferred");
			snprintf(line, sizeof line, "%.2f Gbit/s average (%s in %.0f ms)",
				 bytes * 8 / ms / 1e6, bytes_text(bytes, a, sizeof a), ms);
			row("bandwidth", line);
		}
		snprintf(line, sizeof line, "%.2f Gbit/s", num(info, "ram", "mbps") / 1000);
		row("last measured rate", line);
	}
	json_t *x = json_object_get(info, "xbzrle-cache");
	if (x != NULL) {
		snprintf(line, sizeof line, "%s pages, %s", count_text(num(x, NULL, "pages"), a, sizeof a),
			 bytes_text(num(x, NULL, "bytes"), b, sizeof b));
		row("xbzrle", line);
		snprintf(line, sizeof line, "%s (%.1f%%)", count_text(num(x, NULL, "cache-miss"), a, sizeof a),
			 100 * num(x, NULL, "cache-miss-rate"));
		row("xbzrle cache misses", line);
		snprintf(line, sizeof line, "%.1f : 1", num(x, NULL, "encoding-rate"));
		row("xbzrle encoding rate", line);
		row("xbzrle overflows", count_text(num(x, NULL, "overflow"), a, sizeof a));
		row("xbzrle cache size", bytes_text(num(x, NULL, "cache-size"), a, sizeof a));
	}
	json_t *bd = json_object_get(info, "x-block-delta");
	if (bd != NULL) {
		snprintf(line, sizeof line, "%s pages, %s", count_text(num(bd, NULL, "pages"), a, sizeof a),
			 bytes_text(num(bd, NULL, "bytes"), b, sizeof b));
		row("changed blocks only", line);
		row("block digests", bytes_text(num(bd, NULL, "digest-bytes"), a, sizeof a));
	}
	const char *why = json_string_value(json_object_get(info, "error-desc"));
	if (why != NULL)
		row("error", why);
}

/* ---------------------------------------------------------------- commands */

static int fail(struct qmp_conn *q, json_t *reply, const char *what)
{
	const char *desc = json_string_value(json_object_get(json_object_get(reply, "error"), "desc"));
	fprintf(stderr, "tern migrate: %s: %s\n", what, desc ? desc : "no answer from the VM");
	json_decref(reply);
	qmp_close(q);
	return 1;
}

static int configure(struct qmp_conn *q, const struct migrate_options *o)
{
	json_t *caps = json_pack("{s:[{s:s,s:b},{s:s,s:b},{s:s,s:b}]}", "capabilities",
				 "capability", "xbzrle", "state", o->xbzrle,
				 "capability", "auto-converge", "state", o->auto_converge,
				 "capability", "events", "state", 1);
	json_t *r = qmp_execute(q, "migrate-set-capabilities", caps, QMP_TIMEOUT_MS);
	if (qmp_return(r) == NULL)
		return fail(q, r, "migrate-set-capabilities");
	json_decref(r);
	json_t *params = json_object();
	if (o->max_bandwidth >= 0)
		json_object_set_new(params, "max-bandwidth", json_integer(o->max_bandwidth));
	if (o->downtime_limit >= 0)
		json_object_set_new(params, "downtime-limit", json_integer(o->downtime_limit));
	if (o->cache_size >= 0)
		json_object_set_new(params, "xbzrle-cache-size", json_integer(o->cache_size));
	r = qmp_execute(q, "migrate-set-parameters", params, QMP_TIMEOUT_MS);
	if (qmp_return(r) == NULL)
		return fail(q, r, "migrate-set-parameters");
	json_decref(r);
	return 0;
}

static int watch(struct qmp_conn *q, const struct migrate_options *o)
{
	int tty = isatty(STDOUT_FILENO);
	unsigned since_line = 0;
	struct rate rate = { 0, 0, 0 };
	for (;;) {
		json_t *r = qmp_execute(q, "query-migrate", NULL, QMP_TIMEOUT_MS);
		json_t *info = qmp_return(r);
		if (info == NULL)
			return fail(q, r, "query-migrate");
		const char *status = json_string_value(json_object_get(info, "status"));
		int done = status != NULL && (strcmp(status, "completed") == 0 ||
					      strcmp(status, "failed") == 0 ||
					      strcmp(status, "cancelled") == 0);
		/* On a terminal one line, redrawn; elsewhere a line a second. */
		int setup = status != NULL && strcmp(status, "setup") == 0;
		double gbps = rate_update(&rate, info);
		if (!o->quiet && !done && !setup && (tty || since_line == 0))
			progress(info, tty, gbps);
		since_line = (since_line + o->interval_ms) >= 1000 ? 0 : since_line + o->interval_ms;
		if (done) {
			if (!o->quiet && tty)
				printf("\n");
			table(info);
			int ok = strcmp(status, "completed") == 0;
			json_decref(r);
			qmp_close(q);
			return ok ? 0 : 1;
		}
		json_decref(r);
		struct timespec nap = { o->interval_ms / 1000, (long)(o->interval_ms % 1000) * 1000000 };
		nanosleep(&nap, NULL);
	}
}

int migrate_main(int argc, char **argv)
{
	struct migrate_options o;
	struct tern_error err = { .msg = "" };
	int rc = parse(argc, argv, &o, &err);
	if (rc > 0) {
		fputs(migrate_usage, stdout);
		return 0;
	}
	if (rc < 0) {
		fprintf(stderr, "tern migrate: %s\n", err.msg);
		return 2;
	}
	struct qmp_conn q;
	if ((rc = qmp_connect(&q, qmp_socket_path(o.qmp), 1, QMP_TIMEOUT_MS)) < 0) {
		fprintf(stderr, "tern migrate: cannot talk QMP on %s: %s\n", o.qmp, strerror(-rc));
		qmp_close(&q);
		return 1;
	}
	if (configure(&q, &o) != 0)
		return 1;
	json_t *r = qmp_execute(&q, "migrate", json_pack("{s:s}", "uri", o.uri), QMP_TIMEOUT_MS);
	if (qmp_return(r) == NULL)
		return fail(&q, r, "migrate");
	json_decref(r);
	return watch(&q, &o);
}
