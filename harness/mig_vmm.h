/*
 * A migration source or destination of either VMM, QEMU or tern, for the
 * benchmarks that compare them: the same guest, the same kind of start,
 * QMP connected.
 */
#ifndef HARNESS_MIG_VMM_H
#define HARNESS_MIG_VMM_H

#include <stddef.h>

#include "qmp/qmp_client.h"
#include "proc.h"

enum { MIG_QEMU, MIG_TERN, MIG_VMMS };
extern const char *const mig_vmm_names[MIG_VMMS];

struct mig_vm_spec {
	int vmm;                /* MIG_QEMU or MIG_TERN */
	unsigned memory_mib;
	const char *append;     /* the built-in guest's command line (a source) */
	const char *incoming;   /* NULL: a source; "defer" or a URI: a destination */
	int prealloc;           /* a source: all guest RAM allocated at start */
};

struct mig_vm {
	struct proc proc;
	struct qmp_conn q;      /* negotiated; q.fd < 0 when not connected */
	char qmp_path[300], serial_path[300];
};

/* Start a VM in dir (files named after role) and connect to its QMP.
 * 0, or -1 with one printable line in why (the VMM's own first line of
 * output, when it said anything).  mig_vm_end() in either case. */
int mig_vm_start(struct mig_vm *vm, const char *dir, const char *role,
		 const struct mig_vm_spec *spec, char *why, size_t why_len);
/* Kill it (if still running), reap it, close QMP. */
void mig_vm_end(struct mig_vm *vm);
/* Wait until the guest's serial log holds `needle`: 0, or -1 after
 * timeout_ms or when the VMM exited first. */
int mig_vm_wait_serial(struct mig_vm *vm, const char *needle, int timeout_ms);
/* QMP migrate-incoming: 0, or -1 with the reason in why. */
int mig_vm_incoming(struct mig_vm *vm, const char *uri, char *why, size_t why_len);

/* The version in QEMU's QMP greeting ("7.2.0"), or "" if not QEMU. */
const char *mig_qemu_version(const struct mig_vm *vm, char *buf, size_t len);
/* MemAvailable from /proc/meminfo, in MiB (0 if unknown). */
unsigned long long mig_mem_available_mib(void);

#endif
