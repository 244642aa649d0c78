/*
 * ioeventfd-bank: a device of N doorbells, each an eventfd that KVM
 * signals when the guest writes 8 bytes to it (KVM_IOEVENTFD), the way
 * virtio queues notify a VMM.  It exists to hold many fds for real: a VM
 * with thousands of them must still live-update in milliseconds.
 *
 * Doorbell i is at guest-physical base + 8 i (in the hole below 4 GiB).
 * The main loop drains the eventfds through one epoll instance and counts
 * the rings of each doorbell; the counts are device state and migrate.
 *
 * The eventfds and the epoll instance are kept in the fd store.  After a
 * live update the new VM must register every doorbell with KVM again,
 * which costs KVM O(n) per registration (O(n^2) in all: a quarter second
 * for 7,530).  So the bank registers them in a thread after the guest has
 * resumed, and until a doorbell is registered, the guest's write to it
 * exits to the VMM, which signals the same eventfd itself: no ring is
 * lost or doubled either way.
 */
#ifndef VMM_IOEVENTFD_BANK_H
#define VMM_IOEVENTFD_BANK_H

#include <pthread.h>
#include <stdint.h>

#include "devices/devices.h"
#include "loop.h"
#include "tern/error.h"
#include "tern/fdstore.h"
#include "machine/vm_state.h"
#include "tern/vmstate.h"

#define IOEVENTFD_BANK_BASE 0xe0000000ULL
#define IOEVENTFD_BANK_MAX (1u << 18) /* 2 MiB of doorbells */
#define IOEVENTFD_BANK_WINDOW ((uint64_t)IOEVENTFD_BANK_MAX * 8)

struct bus_space;

struct ioeventfd_bank {
	uint32_t count;
	uint64_t base;
	int *fd;
	uint64_t *rings;
	int epoll_fd;
	int64_t handle;
	struct loop *loop;
	int kvm_vm_fd;
	uint32_t registered; /* doorbells 0 .. registered-1 are KVM's (atomic) */
	pthread_t thread;
	int thread_started;
	int stop;            /* atomic: the registering thread must leave */
	int register_error;  /* errno of a failed registration, or 0 */
};

/* Open (or take up from `store`) count eventfds and the epoll set. */
int ioeventfd_bank_create(struct ioeventfd_bank *b, uint32_t count, struct tern_fdstore *store,
			  struct tern_error *err);
/* Register every doorbell with KVM now (a fresh VM), or in a thread
 * (after a live update, the guest already running). */
int ioeventfd_bank_register(struct ioeventfd_bank *b, int kvm_vm_fd, int background,
			    struct tern_error *err);
int ioeventfd_bank_attach(struct ioeventfd_bank *b, struct loop *loop);
/* Count the rings waiting in the eventfds (main thread). */
void ioeventfd_bank_drain(struct ioeventfd_bank *b);
/* The doorbells as a range of the MMIO space: a write KVM did not take
 * (not registered yet) reaches it, and the VMM rings the doorbell itself. */
int ioeventfd_bank_map(struct ioeventfd_bank *b, struct bus_space *mmio, struct tern_error *err);
uint32_t ioeventfd_bank_registered(const struct ioeventfd_bank *b);
void ioeventfd_bank_destroy(struct ioeventfd_bank *b);

/* Its state, the ring counts, in the registry (machine/vm_state.h). */
extern const struct vm_state_type ioeventfd_bank_type;
/* --device ioeventfd-bank,count=N (devices/devices.h). */
extern const struct device_kind ioeventfd_bank_kind;

#endif
