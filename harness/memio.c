/* A tern_io over memory; see memio.h. */
#include "memio.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int mem_writev(void *opaque, const struct iovec *iov, int n)
{
	struct memio *m = opaque;
	for (int i = 0; i < n; i++) {
		if (m->len + iov[i].iov_len > m->cap) {
			size_t cap = m->cap ? m->cap : 4096;
			while (cap < m->len + iov[i].iov_len)
				cap *= 2;
			uint8_t *d = realloc(m->data, cap);
			if (d == NULL)
				return -ENOMEM;
			m->data = d;
			m->cap = cap;
		}
		memcpy(m->data + m->len, iov[i].iov_base, iov[i].iov_len);
		m->len += iov[i].iov_len;
	}
	return 0;
}

static int mem_read(void *opaque, void *buf, size_t len)
{
	struct memio *m = opaque;
	if (m->at == m->len && len > 0)
		return -ENODATA;
	if (len > m->len - m->at)
		return -EPIPE; /* ends inside what was asked for */
	memcpy(buf, m->data + m->at, len);
	m->at += len;
	return 0;
}

void memio_init(struct memio *m)
{
	memset(m, 0, sizeof *m);
	m->io = (struct tern_io){ m, mem_writev, mem_read };
}

void memio_init_reader(struct memio *m, const uint8_t *data, size_t len)
{
	memio_init(m);
	m->data = (uint8_t *)data;
	m->len = len;
	m->cap = 0; /* not ours to free */
}

void memio_free(struct memio *m)
{
	if (m->cap)
		free(m->data);
	memset(m, 0, sizeof *m);
}
