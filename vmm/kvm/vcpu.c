/* vCPU creation, the KVM_RUN loop and exit handling. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "machine/vm.h"

#define KICK_SIGNAL SIGUSR1

static void kick_handler(int sig)
{
	(void)sig; /* only interrupts KVM_RUN */
}

void vcpu_install_kick_signal(void)
{
	struct sigaction sa = { .sa_handler = kick_handler };
	sigemptyset(&sa.sa_mask);
	sigaction(KICK_SIGNAL, &sa, NULL); /* no SA_RESTART: KVM_RUN returns EINTR */
}

/* Each vCPU gets KVM's supported CPUID with its own APIC ID. */
static int set_cpuid(struct vm *vm, struct vcpu *v, struct tern_error *err)
{
	const struct kvm_cpuid2 *base = vm->kvm.cpuid;
	size_t bytes = sizeof *base + base->nent * sizeof base->entries[0];
	struct kvm_cpuid2 *c = malloc(bytes);
	if (c == NULL)
		return tern_errorf(err, -ENOMEM, "out of memory");
	memcpy(c, base, bytes);
	for (unsigned i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		if (e->function == 1) {
			e->ebx = (e->ebx & 0x00ffffffu) | (v->index << 24);
			e->ecx |= 1u << 31; /* running under a hypervisor */
		} else if (e->function == 0xb || e->function == 0x1f) {
			e->edx = v->index;
		}
	}
	int rc = ioctl(v->fd, KVM_SET_CPUID2, c);
	free(c);
	if (rc < 0)
		return tern_errorf(err, -errno, "KVM_SET_CPUID2 on vCPU %u: %s", v->index,
				   strerror(errno));
	return 0;
}

int vcpu_create(struct vm *vm, struct vcpu *v, unsigned index, struct tern_error *err)
{
	memset(v, 0, sizeof *v);
	v->vm = vm;
	v->index = index;
	v->fd = ioctl(vm->kvm.vm_fd, KVM_CREATE_VCPU, (unsigned long)index);
	if (v->fd < 0)
		return tern_errorf(err, -errno, "KVM_CREATE_VCPU %u: %s", index, strerror(errno));
	v->run = mmap(NULL, (size_t)vm->kvm.vcpu_mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		      v->fd, 0);
	if (v->run == MAP_FAILED) {
		v->run = NULL;
		return tern_errorf(err, -errno, "mapping vCPU %u's run page: %s", index,
				   strerror(errno));
	}
	return set_cpuid(vm, v, err);
}

void vcpu_destroy(struct vcpu *v)
{
	if (v->ring != NULL) {
		munmap(v->ring, (size_t)v->vm->dirty.ring_entries * sizeof(struct kvm_dirty_gfn));
		v->ring = NULL;
		pthread_mutex_destroy(&v->ring_lock);
	}
	if (v->run != NULL)
		munmap(v->run, (size_t)v->vm->kvm.vcpu_mmap_size);
	if (v->fd >= 0)
		close(v->fd);
	v->run = NULL;
	v->fd = -1;
}

void vcpu_kick(struct vcpu *v)
{
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	if (v->thread_started)
		pthread_kill(v->thread, KICK_SIGNAL);
}

static void crash(struct vcpu *v, const char *what)
{
	char detail[256];
	struct kvm_regs regs;
	if (ioctl(v->fd, KVM_GET_REGS, &regs) == 0)
		snprintf(detail, sizeof detail, "vCPU %u: %s (rip=0x%llx rsp=0x%llx)", v->index, what,
			 (unsigned long long)regs.rip, (unsigned long long)regs.rsp);
	else
		snprintf(detail, sizeof detail, "vCPU %u: %s", v->index, what);
	vm_request_exit(v->vm, VM_EXIT_CRASH, 0, detail);
}

static void handle_io(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	for (uint32_t i = 0; i < run->io.count; i++) {
		bus_access(&v->vm->pio, run->io.port, data, run->io.size,
			   run->io.direction == KVM_EXIT_IO_OUT);
		data += run->io.size;
	}
}

/* Returns 0 to keep running, -1 when this vCPU must stop. */
static int handle_exit(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	char what[128];
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		handle_io(v);
		return 0;
	case KVM_EXIT_MMIO:
		/* A BAR, a doorbell KVM does not signal yet, or nothing: then
		 * reads float high and writes vanish. */
		bus_access(&v->vm->mmio, run->mmio.phys_addr, run->mmio.data, run->mmio.len,
			   run->mmio.is_write);
		return 0;
	case KVM_EXIT_INTR:
		return 0;
	case KVM_EXIT_DIRTY_RING_FULL:
		/* This vCPU's ring is full: harvest it so the guest can go on. */
		dirty_ring_harvest(&v->vm->dirty, v);
		dirty_ring_reset(&v->vm->dirty);
		return 0;
	case KVM_EXIT_SHUTDOWN:
		crash(v, "the guest triple-faulted (CPU shutdown)");
		return -1;
	case KVM_EXIT_SYSTEM_EVENT:
		if (run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN) {
			vm_request_exit(v->vm, VM_EXIT_GUEST, 0, "the guest powered off");
			return -1;
		}
		snprintf(what, sizeof what, "system event %u (reset or crash)",
			 run->system_event.type);
		crash(v, what);
		return -1;
	case KVM_EXIT_INTERNAL_ERROR:
		snprintf(what, sizeof what, "KVM internal error, suberror %u",
			 run->internal.suberror);
		crash(v, what);
		return -1;
	case KVM_EXIT_FAIL_ENTRY:
		snprintf(what, sizeof what, "KVM could not enter the guest (hardware reason 0x%llx)",
			 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		crash(v, what);
		return -1;
	default:
		snprintf(what, sizeof what, "unexpected KVM exit reason %u", run->exit_reason);
		crash(v, what);
		return -1;
	}
}

/*
 * KVM finishes an I/O or MMIO exit (stores what an IN read, moves RIP on)
 * only when KVM_RUN is entered again.  Before a vCPU parks, where its
 * state may be saved, enter once with immediate_exit set: the exit is
 * completed and the guest does not run.
 */
static void complete_exit(struct vcpu *v)
{
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	while (ioctl(v->fd, KVM_RUN, 0) == 0) {
		/* Not expected: KVM ran anyway; handle what it reports and retry. */
		if (handle_exit(v) != 0)
			break;
	}
	v->exit_pending = 0;
}

/* The throttle asked this vCPU to sit out a while (auto-converge); a
 * pause or the end of the VM cuts the nap short.  Under vm->lock. */
static void throttle_nap(struct vcpu *v)
{
	struct vm *vm = v->vm;
	uint64_t ns = __atomic_exchange_n(&v->throttle_ns, 0, __ATOMIC_ACQ_REL);
	if (ns == 0)
		return;
	struct timespec until; /* vm->cond waits on the realtime clock */
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)(ns / 1000000000u);
	until.tv_nsec += (long)(ns % 1000000000u);
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	while (!vm->pause_requested && !vm->stopping &&
	       pthread_cond_timedwait(&vm->cond, &vm->lock, &until) == 0)
		;
}

/* Park while paused; returns nonzero when the thread must leave. */
static int wait_until_runnable(struct vcpu *v)
{
	struct vm *vm = v->vm;
	pthread_mutex_lock(&vm->lock);
	if (vm->pause_requested && !vm->stopping && v->exit_pending) {
		pthread_mutex_unlock(&vm->lock);
		complete_exit(v);
		pthread_mutex_lock(&vm->lock);
	}
	throttle_nap(v);
	/* Cleared under the lock: a pause that follows sets it again. */
	__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
	while (vm->pause_requested && !vm->stopping) {
		vm->parked++;
		pthread_cond_broadcast(&vm->cond);
		pthread_cond_wait(&vm->cond, &vm->lock);
		vm->parked--;
		__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
	}
	int stop = vm->stopping;
	pthread_mutex_unlock(&vm->lock);
	return stop;
}

void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	for (;;) {
		if (wait_until_runnable(v))
			break;
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			char what[128];
			snprintf(what, sizeof what, "KVM_RUN failed: %s", strerror(errno));
			crash(v, what);
			break;
		}
		v->exit_pending = v->run->exit_reason == KVM_EXIT_IO ||
				  v->run->exit_reason == KVM_EXIT_MMIO;
		if (handle_exit(v) != 0)
			break;
	}
	struct vm *vm = v->vm;
	pthread_mutex_lock(&vm->lock);
	vm->running_threads--;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	return NULL;
}
