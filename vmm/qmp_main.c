/* `tern qmp`: run one QMP command on a running VM and print the reply. */
#include "qmp_main.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qmp/qmp_client.h"

#define QMP_TIMEOUT_MS 10000

int qmp_main(int argc, char **argv)
{
	if (argc < 3 || argc > 4 || strcmp(argv[1], "--help") == 0) {
		fprintf(argc >= 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr,
			"usage: tern qmp unix:PATH COMMAND ['{\"argument\": value, ...}']\n"
			"Run one QMP command on a running VM and print the reply's return value.\n");
		return argc >= 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
	}
	json_t *args = NULL;
	if (argc == 4) {
		json_error_t jerr;
		args = json_loads(argv[3], 0, &jerr);
		if (!json_is_object(args)) {
			fprintf(stderr, "tern qmp: the arguments must be a JSON object: %s\n",
				args == NULL ? jerr.text : "not an object");
			json_decref(args);
			return 2;
		}
	}
	struct qmp_conn q;
	int rc = qmp_connect(&q, qmp_socket_path(argv[1]), 1, QMP_TIMEOUT_MS);
	if (rc < 0) {
		fprintf(stderr, "tern qmp: cannot talk QMP on %s: %s\n", argv[1], strerror(-rc));
		json_decref(args);
		qmp_close(&q);
		return 1;
	}
	json_t *r = qmp_execute(&q, argv[2], args, QMP_TIMEOUT_MS);
	json_t *ret = qmp_return(r);
	if (ret == NULL) {
		const char *desc = json_string_value(json_object_get(json_object_get(r, "error"), "desc"));
		fprintf(stderr, "tern qmp: %s: %s\n", argv[2], desc ? desc : "no answer from the VM");
		json_decref(r);
		qmp_close(&q);
		return 1;
	}
	char *text = json_dumps(ret, JSON_INDENT(2) | JSON_ENCODE_ANY);
	printf("%s\n", text ? text : "");
	free(text);
	json_decref(r);
	qmp_close(&q);
	return 0;
}
