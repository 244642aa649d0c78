/* bench/migration's tables; see mig_table.h. */
#include "mig_table.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#include "stats.h"

const char *const flow_names[FLOWS] = { "users", "ahead" };

static const char *const metric_names[METRICS] = {
	"total time ms", "running on dst ms", "dst start->running ms", "downtime ms", "setup time ms",
	"incoming->migrate ms", "transferred MiB", "zero pages", "whole pages", "xbzrle pages",
	"xbzrle cache misses", "xbzrle overflows", "block-delta pages", "dirty syncs",
	"converged",
};

static const char *const csv_names[METRICS] = {
	"total_ms", "running_ms", "dst_start_to_running_ms", "downtime_ms", "setup_ms", "incoming_to_migrate_ms",
	"transferred_mib", "zero_pages", "whole_pages", "xbzrle_pages", "xbzrle_misses",
	"xbzrle_overflows", "block_delta_pages", "dirty_syncs", "converged_runs",
};

/* The median over the runs that have the figure (converged: the count). */
static double median_of(const struct results *r, size_t s, int flow, int vmm, int metric)
{
	double vals[MAX_REPS];
	int n = 0;
	for (int k = 0; k < r->got[s][flow][vmm]; k++)
		if (!isnan(r->samples[s][flow][vmm][metric][k]))
			vals[n++] = r->samples[s][flow][vmm][metric][k];
	if (metric != M_CONVERGED)
		return harness_median(vals, n);
	double sum = 0;
	for (int k = 0; k < n; k++)
		sum += vals[k];
	return n ? sum : NAN;
}

static int xbzrle_only(int metric)
{
	return metric == M_XBZRLE || metric == M_MISS || metric == M_OVERFLOW || metric == M_DELTA;
}

/* A row of the table, built piece by piece and printed without the
 * blanks an empty last column leaves. */
struct row {
	char text[256];
	size_t len;
};

static void add(struct row *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct row *w, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(w->text + w->len, sizeof w->text - w->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		w->len = w->len + (size_t)n < sizeof w->text ? w->len + (size_t)n : sizeof w->text - 1;
}

static void emit(struct row *w)
{
	while (w->len > 0 && w->text[w->len - 1] == ' ')
		w->len--;
	printf("%.*s\n", (int)w->len, w->text);
	w->len = 0;
}

static void value(struct row *w, double v)
{
	if (isnan(v))
		add(w, " %9s", "-");
	else
		add(w, " %9.0f", v);
}

/* One flow's three columns of one row. */
static void cells(struct row *w, const struct results *r, size_t s, int flow, int metric)
{
	double q = median_of(r, s, flow, MIG_QEMU, metric),
	       t = median_of(r, s, flow, MIG_TERN, metric);
	if (metric == M_CONVERGED) {
		char a[24], b[24];
		snprintf(a, sizeof a, "%.0f/%d", isnan(q) ? 0 : q, r->got[s][flow][MIG_QEMU]);
		snprintf(b, sizeof b, "%.0f/%d", isnan(t) ? 0 : t, r->got[s][flow][MIG_TERN]);
		add(w, " %9s %9s %9s", a, b, "");
		return;
	}
	value(w, q);
	value(w, t);
	if (metric != M_GAP && q > 0 && !isnan(t))
		add(w, " %8.2fx", t / q);
	else
		add(w, " %9s", "");
}

void table_print(const struct results *r)
{
	printf("live migration, tern against QEMU %s (-cpu %s), built-in guest, 1 vCPU, loopback "
	       "TCP, median of %d\n", r->qemu_version[0] ? r->qemu_version : "(version unknown)",
	       r->qemu_cpu ? r->qemu_cpu : "none starts here", r->reps);
	printf("users: the destination is started with defer once the source is ready, then\n"
	       "       migrate-incoming, and migrate to the source at its reply (libvirt's order)\n");
	printf("ahead: the destination is started with defer and given migrate-incoming before\n"
	       "       the source starts; migrate once the source is ready, at least %d ms later\n",
	       r->ahead_ms);
	printf("running on dst: from migrate to the destination's RESUME event; dst start->"
	       "running:\n       from starting the destination to then (users' flow only)\n"
	       "not converged in 60 s: cancelled; its bytes and pages are those sent by then\n");
	for (size_t s = 0; s < r->count; s++) {
		if (!r->wanted[s])
			continue;
		const struct scenario *sc = &r->scenarios[s];
		printf("\n%s: %s\n", sc->name, sc->what);
		if (sc->note != NULL)
			printf("  (%s)\n", sc->note);
		int runs = 0;
		for (int f = 0; f < FLOWS; f++)
			for (int v = 0; v < MIG_VMMS; v++)
				runs += r->got[s][f][v];
		if (r->skipped[s][0] != '\0')
			printf("  %s%s\n", r->skipped[s], runs ? " (in some runs)" : "");
		if (runs == 0)
			continue;
		struct row w = { .len = 0 };
		add(&w, "  %-22s %29s   %29s", "", "---------- users ----------",
		    "---------- ahead ----------");
		emit(&w);
		add(&w, "  %-22s", "");
		for (int f = 0; f < FLOWS; f++)
			add(&w, "%s %9s %9s %9s", f ? "  " : "", "qemu", "tern", "tern/qemu");
		emit(&w);
		for (int i = 0; i < METRICS; i++) {
			if (!sc->xbzrle && xbzrle_only(i))
				continue;
			add(&w, "  %-22s", metric_names[i]);
			for (int f = 0; f < FLOWS; f++) {
				if (f)
					add(&w, "  ");
				cells(&w, r, s, f, i);
			}
			emit(&w);
		}
	}
}

void table_csv(const struct results *r)
{
	printf("scenario,flow,vmm,runs");
	for (int i = 0; i < METRICS; i++)
		printf(",%s", csv_names[i]);
	printf("\n");
	for (size_t s = 0; s < r->count; s++) {
		if (!r->wanted[s])
			continue;
		for (int f = 0; f < FLOWS; f++)
			for (int v = 0; v < MIG_VMMS; v++) {
				printf("%s,%s,%s,%d", r->scenarios[s].name, flow_names[f],
				       mig_vmm_names[v], r->got[s][f][v]);
				for (int i = 0; i < METRICS; i++) {
					double m = median_of(r, s, f, v, i);
					printf(isnan(m) ? "," : ",%.0f", m);
				}
				printf("\n");
			}
	}
}
