/* What the device-state tests share (tests/device_support.c). */
#ifndef TESTS_DEVICE_SUPPORT_H
#define TESTS_DEVICE_SUPPORT_H

#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

#include "../harness/sock.h"
#include "../harness/tern.h"
#include "qmp/qmp_client.h"

#define DEVICE_DOORBELLS 8
#define DEVICE_BANK "ioeventfd-bank,count=8"

/* A tern running the built-in guest (or waiting for one), with its serial
 * socket and a QMP connection. */
struct device_guest {
	struct tern_vm vm;
	struct text_stream serial;
	int fd;
	long at;
	struct qmp_conn q;
};

/* Every tern a test starts is tracked, so that one a failed test leaves
 * behind is ended (by its pid, and only while it is still an unreaped
 * child of ours) rather than left waiting for a client forever;
 * device_end_leftovers is each test's teardown. */
void device_track(pid_t pid);
int device_end_leftovers(void **state);

/* Destinations started --paused (as libvirt starts them, -S). */
extern int device_start_paused;

/* A tern with `device` (NULL: none) for g, whose vm is prepared first if
 * it is not: an idle guest, or (incoming not NULL) a destination `tern
 * run --incoming INCOMING`; connected to its serial port and QMP. */
void device_start_tern(struct device_guest *g, const char *device, const char *incoming);
/* An idle guest with `device` (NULL: none). */
void device_boot(struct device_guest *g, const char *device);
/* A destination: `tern run --incoming INCOMING` with the same machine. */
void device_destination(struct device_guest *g, const char *device, const char *incoming);
/* A tern said nothing of a sanitizer's (build-asan). */
void device_expect_clean(struct proc *p);
/* Quit a tern that still runs (it must end well); one that ended already
 * ended as the test expected. */
void device_end_guest(struct device_guest *g);

/* A serial command and the line that answers it (the offset past `answer`). */
long device_say(struct device_guest *g, const char *cmd, const char *answer);
/* Output the guest prints by itself (offset past it). */
void device_serial_expect(struct device_guest *g, const char *needle);
/* The guest checks all of its memory against what it wrote: it must say
 * ok.  What it reports (pages written, writes, checksum), into out. */
void device_verify(struct device_guest *g, char *out, size_t len);
/* Its memory is as it was before the hop: the same report. */
void device_expect_same_memory(struct device_guest *g, const char *want, const char *hop);
void device_ring(struct device_guest *g, unsigned doorbell);

void device_expect_status(struct device_guest *g, const char *want);
void device_stop(struct device_guest *g);
void device_cont(struct device_guest *g);
/* A QMP error reply's desc, or NULL. */
const char *device_error_desc(json_t *reply);
/* query-migrate until it says completed (or failed); the last answer. */
json_t *device_migration_end(struct device_guest *g);
void device_expect_completed(struct device_guest *g);

/* x-query-vm-state as {name: entry}, in registration order. */
json_t *device_vm_state(struct device_guest *g);
/* The entry is carried by `carrier`; one of its numbers. */
int device_carried_by(json_t *entry, const char *carrier);
long long device_number(json_t *entry, const char *key);
/* The per-doorbell ring counts, as x-query-ioeventfd-bank gives them,
 * must be `want` (DEVICE_DOORBELLS of them). */
void device_expect_rings(struct device_guest *g, const unsigned *want, const char *hop);

#endif
