/*
 * Representative QMP sessions for test_qmp_schema: the same migration
 * cases (a bad URI, a closed port, a cancel, one that completes, to a
 * `--incoming defer` destination on tcp:127.0.0.1:0) driven on tern and on
 * QEMU 7.2, and on tern everything else it answers (negotiation, every
 * query command, the parameters and capabilities, file:, cpr-exec).
 */
#ifndef TESTS_QMP_FLOWS_H
#define TESTS_QMP_FLOWS_H

#include <jansson.h>

/* Drive tern through everything (needs KVM: skips without).  Its
 * processes inherit the environment (TERN_QMP_TRACE).  tern_path: this
 * build's tern, absolute, for cpr-exec. */
void qmp_flows_run(const char *dir, const char *tern_path);
/* What tern emitted in qmp_flows_run's migration cases: {"CASE": [MIGRATION
 * statuses, and what else the case notes]}; NULL if it did not run.  A new
 * reference. */
json_t *qmp_flows_tern_events(void);
/* The same cases on QEMU (TCG, no KVM needed); NULL (said why) if QEMU
 * cannot run them. */
json_t *qmp_flows_qemu_events(const char *dir);

#endif
