/*
 * tern-img snapshot: -c create, -l list, -a apply, -d delete.
 */
#include <stdio.h>
#include <unistd.h>

#include "img.h"

int img_snapshot(int argc, char **argv)
{
	char action = 0;
	const char *name = NULL;
	int c;
	optind = 1;
	while ((c = getopt(argc, argv, "c:la:d:qU")) != -1) {
		switch (c) {
		case 'c': case 'a': case 'd':
			if (action)
				return img_usage("snapshot: give one of -c, -l, -a, -d");
			action = (char)c;
			name = optarg;
			break;
		case 'l':
			if (action)
				return img_usage("snapshot: give one of -c, -l, -a, -d");
			action = 'l';
			break;
		case 'q': case 'U': break;
		default: return img_usage("snapshot: bad option");
		}
	}
	if (!action)
		return img_usage("snapshot: give one of -c, -l, -a, -d");
	if (optind >= argc)
		return img_usage("snapshot: no file name");
	const char *path = argv[optind];
	struct tern_qcow2 *q;
	if (img_open(path, action != 'l', false, &q))
		return 1;
	struct tern_error err = { { 0 } };
	int r = 0;
	switch (action) {
	case 'l':
		if (tern_qcow2_snapshot_count(q)) {
			printf("Snapshot list:\n");
			img_print_snapshots(q);
		}
		break;
	case 'c': r = tern_qcow2_snapshot_create(q, name, &err); break;
	case 'a': r = tern_qcow2_snapshot_apply(q, name, &err); break;
	case 'd': r = tern_qcow2_snapshot_delete(q, name, &err); break;
	}
	if (r < 0) {
		tern_qcow2_close(q, NULL);
		return img_fail(path, &err);
	}
	if (tern_qcow2_close(q, &err) < 0)
		return img_fail(path, &err);
	return 0;
}
