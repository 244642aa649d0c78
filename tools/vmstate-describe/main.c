/*
 * tern-vmstate-describe: print the description of every state tern saves
 * (vmm/machine/vm_state_describe.h), the text of tests/vmstate.desc.
 *
 *   tern-vmstate-describe [FILE]   (FILE: written whole, or not at all)
 *
 * Linked with all of libvmm (--whole-archive), so every VM_STATE_TYPE is in.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "machine/vm_state_describe.h"

int main(int argc, char **argv)
{
	if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
		fprintf(stderr, "usage: tern-vmstate-describe [FILE]\n");
		return 2;
	}
	struct tern_buf b = { 0 };
	struct tern_error err = { .msg = "" };
	if (vm_state_describe(&b, &err) < 0) {
		fprintf(stderr, "tern-vmstate-describe: %s\n", err.msg);
		return 1;
	}
	FILE *f = stdout;
	char tmp[4096];
	if (argc == 2) {
		snprintf(tmp, sizeof tmp, "%s.tmp", argv[1]);
		if ((f = fopen(tmp, "w")) == NULL) {
			perror(tmp);
			return 1;
		}
	}
	int bad = fwrite(b.data, 1, b.len, f) != b.len;
	bad |= f == stdout ? fflush(f) != 0 : fclose(f) != 0;
	if (!bad && argc == 2 && rename(tmp, argv[1]) != 0)
		bad = 1;
	if (bad) {
		perror(argc == 2 ? argv[1] : "stdout");
		if (argc == 2)
			remove(tmp);
	}
	tern_buf_free(&b);
	return bad;
}
