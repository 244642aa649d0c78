/* Live migrations between tern processes; see migrate.h. */
#include "migrate.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "proc.h"

int harness_free_tcp_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	int port = -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

int mig_set_capabilities(struct qmp_conn *q, int xbzrle, int auto_converge, int events)
{
	json_t *args = json_pack("{s:[{s:s,s:b},{s:s,s:b},{s:s,s:b}]}", "capabilities",
				 "capability", "xbzrle", "state", xbzrle,
				 "capability", "auto-converge", "state", auto_converge,
				 "capability", "events", "state", events);
	return qmp_do(q, "migrate-set-capabilities", args, NULL, 10000);
}

const char *mig_status(json_t *info)
{
	const char *s = json_string_value(json_object_get(info, "status"));
	return s != NULL ? s : "";
}

long long mig_number(json_t *info, const char *path)
{
	char key[64];
	json_t *at = info;
	while (at != NULL && *path != '\0') {
		const char *dot = strchr(path, '.');
		size_t n = dot ? (size_t)(dot - path) : strlen(path);
		snprintf(key, sizeof key, "%.*s", (int)n, path);
		at = json_object_get(at, key);
		path += n + (dot ? 1 : 0);
	}
	if (json_is_integer(at))
		return json_integer_value(at);
	return json_is_real(at) ? (long long)json_real_value(at) : -1;
}

json_t *mig_wait(struct qmp_conn *q, int poll_ms, int timeout_ms,
		 void (*on_progress)(json_t *info, void *opaque), void *opaque)
{
	double deadline = deadline_ms(timeout_ms);
	while (now_ms() < deadline) {
		json_t *r = qmp_execute(q, "query-migrate", NULL, 10000);
		json_t *info = qmp_return(r);
		if (info == NULL) {
			json_decref(r);
			return NULL;
		}
		json_incref(info);
		json_decref(r);
		if (on_progress != NULL)
			on_progress(info, opaque);
		const char *s = mig_status(info);
		if (strcmp(s, "completed") == 0 || strcmp(s, "failed") == 0 ||
		    strcmp(s, "cancelled") == 0)
			return info;
		json_decref(info);
		struct timespec nap = { poll_ms / 1000, (long)(poll_ms % 1000) * 1000000 };
		nanosleep(&nap, NULL);
	}
	return NULL;
}

int mig_start_destination(struct tern_vm *vm, const char *uri, ...)
{
	const char *args[40] = { "--incoming", uri };
	int n = 2;
	va_list ap;
	va_start(ap, uri);
	for (const char *a; n < 39 && (a = va_arg(ap, const char *)) != NULL;)
		args[n++] = a;
	va_end(ap);
	args[n] = NULL;
	return tern_vm_startv(vm, args);
}
