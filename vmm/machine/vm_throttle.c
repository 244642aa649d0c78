/*
 * CPU throttling for auto-converge, QEMU's way: in every period each vCPU
 * runs a 10 ms slice and then sits out slice * p / (100 - p), so a guest
 * throttled to p percent runs (100 - p) percent of the time.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "machine/vm.h"

#define SLICE_NS 10000000ull

static void *throttle_main(void *arg)
{
	struct vm *vm = arg;
	for (;;) {
		pthread_mutex_lock(&vm->lock);
		unsigned p = vm->throttle_percent;
		if (p > 0 && vm->state == VM_STATE_RUNNING && !vm->stopping) {
			uint64_t nap = SLICE_NS * p / (100 - p);
			for (unsigned i = 0; i < vm->vcpus; i++) {
				__atomic_store_n(&vm->vcpu[i].throttle_ns, nap, __ATOMIC_RELEASE);
				vcpu_kick(&vm->vcpu[i]);
			}
		}
		pthread_mutex_unlock(&vm->lock);
		if (p == 0 || vm_exit_requested(vm))
			return NULL;
		/* The slice the vCPUs run, plus the nap they take. */
		uint64_t period = SLICE_NS + SLICE_NS * p / (100 - p);
		struct timespec ts = { (time_t)(period / 1000000000u), (long)(period % 1000000000u) };
		nanosleep(&ts, NULL);
	}
}

int vm_set_throttle(struct vm *vm, unsigned percent)
{
	if (percent > 99)
		percent = 99;
	pthread_mutex_lock(&vm->lock);
	vm->throttle_percent = percent;
	int start = percent > 0 && !vm->throttle_thread_running;
	int join = percent == 0 && vm->throttle_thread_running;
	if (start)
		vm->throttle_thread_running = 1;
	if (join)
		vm->throttle_thread_running = 0;
	pthread_mutex_unlock(&vm->lock);
	if (join) {
		pthread_join(vm->throttle_thread, NULL);
		for (unsigned i = 0; i < vm->vcpus; i++)
			__atomic_store_n(&vm->vcpu[i].throttle_ns, 0, __ATOMIC_RELEASE);
	}
	if (start) {
		int rc = pthread_create(&vm->throttle_thread, NULL, throttle_main, vm);
		if (rc != 0) {
			pthread_mutex_lock(&vm->lock);
			vm->throttle_thread_running = 0;
			vm->throttle_percent = 0;
			pthread_mutex_unlock(&vm->lock);
			return -rc;
		}
	}
	return 0;
}
