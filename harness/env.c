/* Test and benchmark environment; see env.h. */
#include "env.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *harness_build_dir(void)
{
	const char *b = getenv("TERN_BUILD");
	return b != NULL && *b != '\0' ? b : "build";
}

static const char *in_build(char *buf, size_t len, const char *name)
{
	char rel[PATH_MAX];
	snprintf(rel, sizeof rel, "%s/%s", harness_build_dir(), name);
	if (realpath(rel, buf) == NULL)
		snprintf(buf, len, "%s", rel);
	return buf;
}

const char *harness_tern(void)
{
	static char path[PATH_MAX];
	return path[0] ? path : in_build(path, sizeof path, "tern");
}

const char *harness_tern_img(void)
{
	static char path[PATH_MAX];
	return path[0] ? path : in_build(path, sizeof path, "tern-img");
}

const char *harness_guest_elf(void)
{
	static char path[PATH_MAX];
	return path[0] ? path : in_build(path, sizeof path, "guest/guest.elf");
}

int harness_kvm_usable(char *why, size_t why_len)
{
	const char *dev = getenv("TERN_KVM_DEVICE");
	if (dev == NULL || *dev == '\0')
		dev = "/dev/kvm";
	int fd = open(dev, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, why_len, "%s is not usable here (%s)", dev, strerror(errno));
		return 0;
	}
	close(fd);
	return 1;
}

int harness_have(const char *program)
{
	const char *path = getenv("PATH");
	if (path == NULL)
		return 0;
	char *copy = strdup(path), *save = NULL;
	int found = 0;
	for (char *dir = strtok_r(copy, ":", &save); dir && !found; dir = strtok_r(NULL, ":", &save)) {
		char full[PATH_MAX];
		snprintf(full, sizeof full, "%s/%s", dir, program);
		found = access(full, X_OK) == 0;
	}
	free(copy);
	return found;
}

char *harness_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char tmpl[PATH_MAX];
	snprintf(tmpl, sizeof tmpl, "%s/tern-test-XXXXXX", base && *base ? base : "/tmp");
	char *dir = mkdtemp(tmpl);
	return dir ? strdup(dir) : NULL;
}

void harness_rmtree(const char *dir)
{
	if (dir == NULL || strncmp(dir, "/", 1) != 0 || strstr(dir, "tern-test-") == NULL)
		return;
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	int rc = system(cmd);
	(void)rc;
}

int harness_guest_checksum(const char *output, uint64_t *sum)
{
	const char *last = NULL;
	for (const char *p = output; (p = strstr(p, "verify ok")) != NULL; p++)
		last = p;
	if (last == NULL)
		return -1;
	const char *c = strstr(last, "checksum=0x");
	const char *eol = strchr(last, '\n');
	if (c == NULL || (eol != NULL && c > eol))
		return -1;
	*sum = strtoull(c + 11, NULL, 16);
	return 0;
}
