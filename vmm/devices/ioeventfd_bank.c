/* The ioeventfd bank; see ioeventfd_bank.h. */
#include "devices/ioeventfd_bank.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "bus/bus.h"
#include "cpr/kept_fds.h"
#include "kvm/irq.h"

#define DOORBELL_BYTES 8
#define EVENTS_PER_WAIT 256

static int open_doorbells(struct ioeventfd_bank *b, struct tern_fdstore *store, int *adopted,
			  struct tern_error *err)
{
	*adopted = kept_fd_find(store, KEPT_BANK_EPOLL, 0) >= 0;
	for (uint32_t i = 0; i < b->count; i++) {
		int fd = kept_fd_find(store, KEPT_BANK_DOORBELL, i);
		if (*adopted) {
			if (fd < 0)
				return tern_errorf(err, -EINVAL, "ioeventfd-bank: doorbell %u was not "
						   "kept by the previous process", i);
		} else {
			fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
			if (fd < 0)
				return tern_errorf(err, -errno, "ioeventfd-bank: eventfd %u of %u: %s "
						   "(raise the open-file limit, ulimit -n)", i,
						   b->count, strerror(errno));
			if (kept_fd_add(store, KEPT_BANK_DOORBELL, i, fd) < 0) {
				close(fd);
				return tern_errorf(err, -ENOMEM, "out of memory");
			}
		}
		b->fd[i] = fd;
	}
	return 0;
}

/* A kept epoll set still watches the kept eventfds: nothing to add. */
static int open_epoll(struct ioeventfd_bank *b, struct tern_fdstore *store, int adopted,
		      struct tern_error *err)
{
	if (adopted) {
		b->epoll_fd = kept_fd_find(store, KEPT_BANK_EPOLL, 0);
		return 0;
	}
	b->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (b->epoll_fd < 0)
		return tern_errorf(err, -errno, "ioeventfd-bank: epoll: %s", strerror(errno));
	for (uint32_t i = 0; i < b->count; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = i };
		if (epoll_ctl(b->epoll_fd, EPOLL_CTL_ADD, b->fd[i], &ev) < 0)
			return tern_errorf(err, -errno, "ioeventfd-bank: epoll: %s", strerror(errno));
	}
	if (kept_fd_add(store, KEPT_BANK_EPOLL, 0, b->epoll_fd) < 0)
		return tern_errorf(err, -ENOMEM, "out of memory");
	return 0;
}

int ioeventfd_bank_create(struct ioeventfd_bank *b, uint32_t count, struct tern_fdstore *store,
			  struct tern_error *err)
{
	memset(b, 0, sizeof *b);
	b->epoll_fd = -1;
	b->handle = -1;
	b->kvm_vm_fd = -1;
	if (count == 0 || count > IOEVENTFD_BANK_MAX)
		return tern_errorf(err, -EINVAL, "ioeventfd-bank: count must be 1..%u",
				   IOEVENTFD_BANK_MAX);
	b->count = count;
	b->base = IOEVENTFD_BANK_BASE;
	b->fd = malloc(count * sizeof *b->fd);
	b->rings = calloc(count, sizeof *b->rings);
	if (b->fd == NULL || b->rings == NULL)
		return tern_errorf(err, -ENOMEM, "out of memory for %u doorbells", count);
	for (uint32_t i = 0; i < count; i++)
		b->fd[i] = -1;
	int adopted;
	int rc = open_doorbells(b, store, &adopted, err);
	if (rc == 0)
		rc = open_epoll(b, store, adopted, err);
	return rc;
}

static int register_one(struct ioeventfd_bank *b, uint32_t i)
{
	const struct kvm_ioevent e = {
		.addr = b->base + (uint64_t)i * DOORBELL_BYTES,
		.len = DOORBELL_BYTES,
		.fd = b->fd[i],
	};
	return kvm_ioeventfd_assign(b->kvm_vm_fd, &e, NULL);
}

static void *register_thread(void *arg)
{
	struct ioeventfd_bank *b = arg;
	for (uint32_t i = 0; i < b->count && !__atomic_load_n(&b->stop, __ATOMIC_ACQUIRE); i++) {
		int rc = register_one(b, i);
		if (rc < 0) {
			b->register_error = -rc; /* the rest go on through the VMM */
			break;
		}
		__atomic_store_n(&b->registered, i + 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

int ioeventfd_bank_register(struct ioeventfd_bank *b, int kvm_vm_fd, int background,
			    struct tern_error *err)
{
	b->kvm_vm_fd = kvm_vm_fd;
	if (background) {
		int rc = pthread_create(&b->thread, NULL, register_thread, b);
		if (rc != 0)
			return tern_errorf(err, -rc, "ioeventfd-bank: thread: %s", strerror(rc));
		b->thread_started = 1;
		return 0;
	}
	for (uint32_t i = 0; i < b->count; i++) {
		int rc = register_one(b, i);
		if (rc < 0)
			return tern_errorf(err, rc, "ioeventfd-bank: KVM_IOEVENTFD for doorbell %u: "
					   "%s", i, strerror(-rc));
		b->registered = i + 1;
	}
	return 0;
}

void ioeventfd_bank_drain(struct ioeventfd_bank *b)
{
	struct epoll_event ev[EVENTS_PER_WAIT];
	int n;
	while ((n = epoll_wait(b->epoll_fd, ev, EVENTS_PER_WAIT, 0)) > 0) {
		for (int k = 0; k < n; k++) {
			uint64_t i = ev[k].data.u64, rings;
			if (i < b->count && read(b->fd[i], &rings, sizeof rings) == sizeof rings)
				b->rings[i] += rings;
		}
		if (n < EVENTS_PER_WAIT)
			break;
	}
}

static void on_ready(void *opaque, int fd, short revents)
{
	(void)fd;
	(void)revents;
	ioeventfd_bank_drain(opaque);
}

int ioeventfd_bank_attach(struct ioeventfd_bank *b, struct loop *loop)
{
	b->loop = loop;
	b->handle = loop_add(loop, b->epoll_fd, POLLIN, on_ready, b);
	return b->handle < 0 ? (int)b->handle : 0;
}

static void doorbell_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
	(void)value; /* any value rings, as KVM's ioeventfd without datamatch */
	struct ioeventfd_bank *b = opaque;
	if (offset % DOORBELL_BYTES != 0 || size != DOORBELL_BYTES)
		return; /* KVM would not match it either: it vanishes */
	uint64_t one = 1;
	ssize_t w = write(b->fd[offset / DOORBELL_BYTES], &one, sizeof one);
	(void)w; /* a full counter (2^64 - 2 rings) is already ringing */
}

int ioeventfd_bank_map(struct ioeventfd_bank *b, struct bus_space *mmio, struct tern_error *err)
{
	const struct bus_range r = {
		.base = b->base,
		.len = (uint64_t)b->count * DOORBELL_BYTES,
		.write = doorbell_write,
		.opaque = b,
		.name = "ioeventfd-bank",
	};
	return bus_register(mmio, &r, err);
}

uint32_t ioeventfd_bank_registered(const struct ioeventfd_bank *b)
{
	return __atomic_load_n(&b->registered, __ATOMIC_ACQUIRE);
}

void ioeventfd_bank_destroy(struct ioeventfd_bank *b)
{
	if (b->thread_started) {
		__atomic_store_n(&b->stop, 1, __ATOMIC_RELEASE);
		pthread_join(b->thread, NULL);
		b->thread_started = 0;
	}
	if (b->handle >= 0)
		loop_remove(b->loop, b->handle);
	/* The eventfds and epoll set are closed with the process: a failed
	 * update's fallback may still need them. */
	free(b->fd);
	free(b->rings);
	memset(b, 0, sizeof *b);
	b->epoll_fd = -1;
	b->handle = -1;
}

/* ------------------------------------------------------------ state */

/* The ring counts, with where the doorbells are so that a bank of another
 * shape refuses them. */
struct bank_state {
	uint64_t base;
	uint32_t count;
	uint64_t *rings;
};

static const struct tern_vmstate_field bank_fields[] = {
	TERN_VMS_FIELD_U64(struct bank_state, base, 0),
	TERN_VMS_FIELD_VARRAY_PTR(struct bank_state, rings, count, U64, IOEVENTFD_BANK_MAX, 0),
	TERN_VMS_FIELD_END,
};

static const struct tern_vmstate_desc bank_desc = {
	.name = "ioeventfd-bank",
	.size = sizeof(struct bank_state),
	.version = 1,
	.min_version = 1,
	.fields = bank_fields,
};

/* Rings the guest made before it stopped may still sit in the eventfds. */
static int bank_quiesce(void *holder, struct tern_error *err)
{
	(void)err;
	ioeventfd_bank_drain(holder);
	return 0;
}

static int bank_save(void *holder, void *obj, struct tern_error *err)
{
	struct ioeventfd_bank *b = holder;
	struct bank_state *st = obj;
	st->rings = malloc((b->count ? b->count : 1) * sizeof *st->rings);
	if (st->rings == NULL)
		return tern_errorf(err, -ENOMEM, "out of memory");
	memcpy(st->rings, b->rings, b->count * sizeof *st->rings);
	st->count = b->count;
	st->base = b->base;
	return 0;
}

static int bank_load(void *holder, const void *obj, struct tern_error *err)
{
	struct ioeventfd_bank *b = holder;
	const struct bank_state *st = obj;
	if (st->count != b->count || st->base != b->base)
		return tern_errorf(err, -EINVAL, "%u doorbells at 0x%llx, this bank has %u at 0x%llx",
				   st->count, (unsigned long long)st->base, b->count,
				   (unsigned long long)b->base);
	memcpy(b->rings, st->rings, b->count * sizeof *b->rings);
	return 0;
}

static void bank_release(void *obj)
{
	struct bank_state *st = obj;
	free(st->rings);
}

VM_STATE_TYPE(ioeventfd_bank_type) = {
	.name = "ioeventfd-bank",
	.desc = &bank_desc,
	.carry = VM_CARRY_ALL,
	.quiesce = bank_quiesce,
	.save = bank_save,
	.load = bank_load,
	.release = bank_release,
};
