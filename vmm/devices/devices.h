/*
 * Devices added with --device NAME,OPTIONS: one table of the kinds tern
 * has (devices.c), and the instances of a VM.
 *
 * A device kind parses its own options and builds itself with what
 * struct device_env gives it: it registers its bus ranges and its state
 * (machine/vm_state.h) there, so migration, live update and migrate file:
 * carry it with nothing else to edit.  A live update carries each
 * device's spec as the user gave it, and the new tern builds the same
 * devices from those specs before it loads their state.
 */
#ifndef VMM_DEVICES_H
#define VMM_DEVICES_H

#include <jansson.h>

#include "loop.h"
#include "tern/error.h"
#include "tern/fdstore.h"

struct vm;

#define DEVICE_SPEC_MAX 128 /* "NAME,key=value,...", with its NUL */
#define VM_MAX_DEVICES 32

struct device_env {
	struct vm *vm;
	struct loop *loop;
	struct tern_fdstore *fds; /* keeps the fds a live update carries */
	int live_update;          /* its state will come from a live update */
};

struct device_kind {
	const char *name;    /* --device NAME,... */
	const char *usage;   /* its options, for --help */
	/* Parse options (after "NAME,"; may be ""), build the device into *dev,
	 * register its ranges and state; 0 or -errno with err. */
	int (*create)(const struct device_env *env, const char *options, void **dev,
		      struct tern_error *err);
	/* Optional: the guest runs again after a live update. */
	void (*resumed)(void *dev);
	/* Optional: what x-query-NAME answers. */
	json_t *(*query)(void *dev);
	void (*destroy)(void *dev);
};

struct device {
	const struct device_kind *kind;
	void *dev;
	char spec[DEVICE_SPEC_MAX];
};

/* The kind a spec names, or NULL with err saying which kinds there are. */
const struct device_kind *device_kind_of(const char *spec, struct tern_error *err);
/* Every kind's usage line, for --help. */
void device_usage(char *out, size_t len);

/* Build the devices `specs` name, in order, into out (*n of them). */
int devices_create(const struct device_env *env, const char *const *specs, unsigned nspecs,
		   struct device *out, unsigned *n, struct tern_error *err);
void devices_resumed(struct device *d, unsigned n);
void devices_destroy(struct device *d, unsigned n);
/* The first device of kind `name`, or NULL. */
struct device *devices_find(struct device *d, unsigned n, const char *name);

#endif
