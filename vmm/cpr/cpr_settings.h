/*
 * The migration settings a live update carries into the new tern: the
 * capabilities and parameters an operator set over QMP (bandwidth,
 * downtime limit, XBZRLE, the update mode and command...), so an update
 * never silently puts them back to their defaults.  Saved as what the
 * query commands return and loaded through the set commands, so the new
 * tern checks them exactly as it checks a client's.
 */
#ifndef TERN_CPR_SETTINGS_H
#define TERN_CPR_SETTINGS_H

#include <stddef.h>
#include <stdint.h>

#include "machine/vm_state.h"
#include "qmp/qmp.h"
#include "tern/error.h"
#include "tern/vmstate.h"

#define CPR_SETTINGS_SECTION "migration-settings"

/* The settings as JSON text into out; 0 or -errno with a message. */
int cpr_settings_save(struct qmp_server *q, struct tern_buf *out, struct tern_error *err);
/* Apply saved settings (untrusted): all or, on an error, none of them. */
int cpr_settings_load(struct qmp_server *q, const uint8_t *data, size_t len,
		      struct tern_error *err);

/* The same as a state type, holder the QMP server. */
extern const struct vm_state_type cpr_settings_type;

#endif
