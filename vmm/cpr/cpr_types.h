/*
 * Live update's types that the migration layer holds for QMP: the update
 * mode (QEMU's migrate-set-parameters "mode"), its limits, and the report
 * query-migrate gives of it.
 */
#ifndef VMM_CPR_TYPES_H
#define VMM_CPR_TYPES_H

#include <stdint.h>

#include "tern/error.h"
#include "tern/migration.h"

/* migrate-set-parameters "mode", in QEMU's names. */
enum vm_migration_mode { MIG_MODE_NORMAL, MIG_MODE_CPR_EXEC, MIG_MODE_CPR_TRANSFER };

#define CPR_EXEC_ARGS_MAX 64
/* x-cpr-timeout: the longest a live update keeps the guest stopped before
 * the old binary (or cpr-exec's guardian) takes it back, in ms. */
#define CPR_TIMEOUT_DEFAULT_MS 5000
#define CPR_TIMEOUT_MIN_MS 10
#define CPR_TIMEOUT_MAX_MS 3600000

/* A live update as query-migrate reports it (on the new process; on the
 * old one only while it runs or when it failed). */
struct cpr_report {
	int used;
	enum tern_mig_status status;
	enum vm_migration_mode mode;
	uint64_t downtime_us, save_us, transfer_us, load_us;
	uint64_t memslots_us; /* of load_us: KVM registering the RAM's memslots */
	int address_space_kept; /* cpr-exec: a keeper spared the exec its teardown */
	uint32_t fds;
	uint64_t state_bytes;
	char error[TERN_ERROR_MAX + 256]; /* room for a fallback's reason in a sentence */
};

#endif
