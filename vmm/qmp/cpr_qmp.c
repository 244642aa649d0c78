/*
 * QMP commands about what a live update carries (tern's own, x- as QEMU
 * names experimental ones): x-query-fdstore lists the kept fds,
 * x-query-ioeventfd-bank the doorbells and how often each rang.
 */
#include "qmp/cpr_qmp.h"

#include <errno.h>

static int add_fd(void *ctx, const char *name, uint32_t id, int fd)
{
	json_array_append_new(ctx, json_pack("{s:s,s:I,s:i}", "name", name, "id", (json_int_t)id,
					     "fd", fd));
	return 0;
}

static int cmd_query_fdstore(void *opaque, json_t *args, json_t **ret, struct tern_error *err)
{
	(void)args;
	(void)err;
	struct runner *r = opaque;
	json_t *list = json_array();
	tern_fdstore_walk(r->fds, add_fd, list);
	*ret = list;
	return 0;
}

static int cmd_query_bank(void *opaque, json_t *args, json_t **ret, struct tern_error *err)
{
	(void)args;
	struct runner *r = opaque;
	struct device *d = devices_find(r->devices, r->ndevices, "ioeventfd-bank");
	if (d == NULL)
		return tern_errorf(err, -ENODEV, "this VM has no ioeventfd-bank (--device "
				   "ioeventfd-bank,count=N)");
	*ret = d->kind->query(d->dev);
	return 0;
}

static const struct qmp_command cpr_commands[] = {
	{ "x-query-fdstore", cmd_query_fdstore, NULL },
	{ "x-query-ioeventfd-bank", cmd_query_bank, NULL },
	{ NULL, NULL, NULL },
};

int cpr_qmp_register(struct qmp_server *s, struct runner *r)
{
	return qmp_server_add_commands(s, cpr_commands, r);
}
