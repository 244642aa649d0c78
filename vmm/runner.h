/*
 * The parts of a running `tern run`, shared by run.c (which builds and
 * serves them) and cpr.c (which hands them to a new tern in a live update).
 */
#ifndef VMM_RUNNER_H
#define VMM_RUNNER_H

#include "devices/devices.h"
#include "loop.h"
#include "migration/vm_migration.h"
#include "qmp/qmp.h"
#include "qmp/vm_qmp.h"
#include "tern/fdstore.h"
#include "machine/vm.h"

struct cpr_blob_in;

struct runner {
	struct vm vm;
	struct vm_config cfg;   /* what the VM was built from (a live update saves it) */
	char qmp_spec[256];     /* "" without QMP */
	struct loop loop;
	struct qmp_server qmp;
	struct vm_qmp vm_qmp;
	struct vm_migration mig;
	struct tern_fdstore *fds; /* every fd a live update carries */
	struct device devices[VM_MAX_DEVICES]; /* --device, built in order */
	unsigned ndevices;
	int have_mig;
	int have_qmp;
	int signal_fd;
	int handed_over;        /* a live update moved the guest to a new process */
	/* How the process began: a live update's state, NULL on a cold start. */
	const struct cpr_blob_in *cpr_in;
	uint64_t cpr_received_ns;  /* when the state was in hand */
	uint64_t cpr_memslot_ns;   /* KVM memslot time by then (cpr-transfer's is before) */
	struct kvm kvm_ready;      /* cpr-transfer: the VM, made while waiting */
	int have_kvm_ready;
	int cpr_fallback;          /* this is the previous binary, taking back a failed update */
	const char *cpr_fallback_error;
};

#endif
