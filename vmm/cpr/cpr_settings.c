/* Migration settings across a live update; see cpr_settings.h. */
#include "cpr/cpr_settings.h"

#include <errno.h>
#include <jansson.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Far above what the settings take; a bigger section is not ours. */
#define SETTINGS_MAX_BYTES 65536

int cpr_settings_save(struct qmp_server *q, struct tern_buf *out, struct tern_error *err)
{
	json_t *none = json_object(), *caps = NULL, *params = NULL;
	int rc = qmp_server_call(q, "query-migrate-capabilities", none, &caps, err);
	if (rc == 0)
		rc = qmp_server_call(q, "query-migrate-parameters", none, &params, err);
	json_decref(none);
	char *text = NULL;
	if (rc == 0) {
		json_t *all = json_pack("{s:o,s:o}", "capabilities", caps, "parameters", params);
		caps = params = NULL; /* all holds them */
		text = all != NULL ? json_dumps(all, JSON_COMPACT) : NULL;
		json_decref(all);
		if (text == NULL)
			rc = tern_errorf(err, -ENOMEM, "out of memory saving migration settings");
	}
	json_decref(caps);
	json_decref(params);
	if (rc == 0) {
		tern_buf_put(out, text, strlen(text));
		if (out->failed)
			rc = tern_errorf(err, -ENOMEM, "out of memory saving migration settings");
	}
	free(text);
	return rc;
}

int cpr_settings_load(struct qmp_server *q, const uint8_t *data, size_t len,
		      struct tern_error *err)
{
	if (len > SETTINGS_MAX_BYTES)
		return tern_errorf(err, -EBADMSG, "migration settings of %zu bytes", len);
	json_error_t jerr;
	json_t *all = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &jerr);
	json_t *caps = json_object_get(all, "capabilities");
	json_t *params = json_object_get(all, "parameters");
	int rc = 0;
	if (!json_is_object(all) || json_object_size(all) != 2 || !json_is_array(caps) ||
	    !json_is_object(params))
		rc = tern_errorf(err, -EBADMSG, "migration settings are not "
				 "{\"capabilities\": [...], \"parameters\": {...}}");
	/* Each set command checks everything before it changes anything; should
	 * the parameters fail, the capabilities go back as they were. */
	json_t *old_caps = NULL, *none = json_object(), *ret = NULL;
	if (rc == 0)
		rc = qmp_server_call(q, "query-migrate-capabilities", none, &old_caps, err);
	json_t *args = rc == 0 ? json_pack("{s:O}", "capabilities", caps) : NULL;
	if (rc == 0)
		rc = qmp_server_call(q, "migrate-set-capabilities", args, &ret, err);
	json_decref(ret);
	ret = NULL;
	json_decref(args);
	if (rc == 0 && (rc = qmp_server_call(q, "migrate-set-parameters", params, &ret, err)) < 0) {
		struct tern_error ignored;
		json_t *undo = json_pack("{s:O}", "capabilities", old_caps);
		json_t *r2 = NULL;
		qmp_server_call(q, "migrate-set-capabilities", undo, &r2, &ignored);
		json_decref(r2);
		json_decref(undo);
	}
	json_decref(ret);
	json_decref(old_caps);
	json_decref(none);
	json_decref(all);
	if (rc < 0)
		tern_error_prefix(err, "the update's migration settings");
	return rc;
}

/* ------------------------------------------------------------ registry */

/* The settings travel as the JSON the query commands give, so a parameter
 * added to those commands is carried with no second list to update, and
 * the new tern checks it as it checks a client's. */
struct settings_state {
	uint32_t len;
	uint8_t *json;
};

static const struct tern_vmstate_field settings_fields[] = {
	TERN_VMS_FIELD_VARRAY_PTR(struct settings_state, json, len, U8, SETTINGS_MAX_BYTES, 0),
	TERN_VMS_FIELD_END,
};

static const struct tern_vmstate_desc settings_desc = {
	.name = CPR_SETTINGS_SECTION,
	.size = sizeof(struct settings_state),
	.version = 1,
	.min_version = 1,
	.fields = settings_fields,
};

static int settings_save(void *holder, void *obj, struct tern_error *err)
{
	struct settings_state *st = obj;
	struct tern_buf b = { 0 };
	int rc = cpr_settings_save(holder, &b, err);
	if (rc == 0 && b.len > SETTINGS_MAX_BYTES)
		rc = tern_errorf(err, -E2BIG, "migration settings of %zu bytes", b.len);
	if (rc == 0) {
		st->len = (uint32_t)b.len;
		st->json = b.data; /* released with the object */
		return 0;
	}
	tern_buf_free(&b);
	return rc;
}

static int settings_load(void *holder, const void *obj, struct tern_error *err)
{
	const struct settings_state *st = obj;
	return cpr_settings_load(holder, st->json, st->len, err);
}

static void settings_release(void *obj)
{
	struct settings_state *st = obj;
	free(st->json);
}

/* A migration leaves them with the source host, as QEMU does. */
static const char *settings_stay(void *holder, enum vm_carrier carrier)
{
	(void)holder;
	(void)carrier;
	return NULL;
}

VM_STATE_TYPE(cpr_settings_type) = {
	.name = CPR_SETTINGS_SECTION,
	.desc = &settings_desc,
	.carry = VM_CARRY_LIVE_UPDATE,
	.save = settings_save,
	.load = settings_load,
	.release = settings_release,
	.blocked = settings_stay,
};
