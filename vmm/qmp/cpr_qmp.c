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
	if (!r->have_bank)
		return tern_errorf(err, -ENODEV, "this VM has no ioeventfd-bank (--device "
				   "ioeventfd-bank,count=N)");
	struct ioeventfd_bank *b = &r->bank;
	ioeventfd_bank_drain(b);
	json_t *rung = json_array();
	uint64_t total = 0;
	for (uint32_t i = 0; i < b->count; i++) {
		if (b->rings[i] == 0)
			continue;
		total += b->rings[i];
		json_array_append_new(rung, json_pack("{s:I,s:I}", "index", (json_int_t)i, "rings",
						      (json_int_t)b->rings[i]));
	}
	*ret = json_pack("{s:I,s:I,s:I,s:I,s:o}", "count", (json_int_t)b->count, "base",
			 (json_int_t)b->base, "kvm-registered",
			 (json_int_t)ioeventfd_bank_registered(b), "rings", (json_int_t)total,
			 "doorbells", rung);
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
