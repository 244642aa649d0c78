/* QMP stream framing; see qmp_framer.h. */
#include "qmp/qmp_framer.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

void qmp_framer_init(struct qmp_framer *f)
{
	memset(f, 0, sizeof *f);
}

void qmp_framer_destroy(struct qmp_framer *f)
{
	free(f->buf);
	memset(f, 0, sizeof *f);
}

int qmp_framer_push(struct qmp_framer *f, const char *data, size_t len)
{
	if (len == 0)
		return 0; /* an empty framer has no buffer to copy into */
	if (f->len + len > f->cap) {
		size_t cap = f->cap ? f->cap : 4096;
		while (cap < f->len + len)
			cap *= 2;
		char *b = realloc(f->buf, cap);
		if (b == NULL)
			return -ENOMEM;
		f->buf = b;
		f->cap = cap;
	}
	memcpy(f->buf + f->len, data, len);
	f->len += len;
	return 0;
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Remove the first n bytes; the scan position moves with the data. */
static void drop_front(struct qmp_framer *f, size_t n)
{
	memmove(f->buf, f->buf + n, f->len - n);
	f->len -= n;
	f->scan -= n;
}

static void end_text(struct qmp_framer *f)
{
	f->in_text = f->bracketed = f->depth = f->in_string = f->escape = 0;
}

/* Track strings and brackets; returns 1 when the bracketed text closes.
 * A text being skipped may open brackets without end: past
 * QMP_SKIP_MAX_DEPTH they are no longer counted (the count stays bounded;
 * where such a text ends hardly matters, its line end ends it anyway). */
static int advance_bracketed(struct qmp_framer *f, char c)
{
	if (f->in_string) {
		if (f->escape)
			f->escape = 0;
		else if (c == '\\')
			f->escape = 1;
		else if (c == '"')
			f->in_string = 0;
	} else if (c == '"') {
		f->in_string = 1;
	} else if (c == '{' || c == '[') {
		f->depth += f->depth < QMP_SKIP_MAX_DEPTH;
	} else if (c == '}' || c == ']') {
		return --f->depth == 0;
	}
	return 0;
}

enum qmp_frame qmp_framer_next(struct qmp_framer *f, const char **text, size_t *len)
{
	if (f->pending_drop != 0) {
		drop_front(f, f->pending_drop);
		f->pending_drop = 0;
	}
	while (f->scan < f->len) {
		char c = f->buf[f->scan];
		if (f->discarding) {
			f->scan++;
			/* A raw line end cannot be part of a JSON text (not even of a
			 * string), so it ends one that broke a limit and never closed. */
			int closed = c == '\n' ||
				     (f->bracketed ? advance_bracketed(f, c) : is_blank(c));
			drop_front(f, f->scan);
			if (closed) {
				f->discarding = 0;
				end_text(f);
			}
			continue;
		}
		if (!f->in_text) {
			if (is_blank(c)) {
				f->scan++;
				continue;
			}
			drop_front(f, f->scan); /* the text starts at buf[0] */
			f->in_text = 1;
			f->bracketed = c == '{' || c == '[';
			f->depth = f->bracketed;
			f->scan = 1;
			continue;
		}
		if (!f->bracketed && (is_blank(c) || c == '{' || c == '[')) {
			*text = f->buf;
			*len = f->scan;
			f->pending_drop = f->scan;
			end_text(f);
			return QMP_FRAME_TEXT;
		}
		f->scan++;
		if (f->bracketed && advance_bracketed(f, c)) {
			*text = f->buf;
			*len = f->scan;
			f->pending_drop = f->scan;
			end_text(f);
			return QMP_FRAME_TEXT;
		}
		if (f->scan > QMP_MAX_MESSAGE || f->depth > QMP_MAX_NESTING) {
			f->discarding = 1;
			drop_front(f, f->scan);
			return f->depth > QMP_MAX_NESTING ? QMP_FRAME_TOO_DEEP : QMP_FRAME_TOO_LARGE;
		}
	}
	if (!f->in_text && f->scan > 0)
		drop_front(f, f->scan);
	return QMP_FRAME_NONE;
}

static const struct tern_vmstate_field qmp_framer_state_fields[] = {
	TERN_VMS_FIELD_BOOL(struct qmp_framer_state, discarding, 0),
	TERN_VMS_FIELD_BOOL(struct qmp_framer_state, bracketed, 0),
	TERN_VMS_FIELD_BOOL(struct qmp_framer_state, in_string, 0),
	TERN_VMS_FIELD_BOOL(struct qmp_framer_state, escape, 0),
	TERN_VMS_FIELD_U32(struct qmp_framer_state, depth, 0),
	TERN_VMS_FIELD_VARRAY_PTR(struct qmp_framer_state, unread, unread_len, U8, QMP_MAX_MESSAGE, 0),
	TERN_VMS_FIELD_END,
};

const struct tern_vmstate_desc qmp_framer_state_desc = {
	.name = "qmp-framer",
	.size = sizeof(struct qmp_framer_state),
	.version = 1,
	.min_version = 1,
	.fields = qmp_framer_state_fields,
};

int qmp_framer_get_state(const struct qmp_framer *f, struct qmp_framer_state *st)
{
	memset(st, 0, sizeof *st);
	bool d = f->discarding;
	st->discarding = d;
	st->bracketed = d && f->bracketed;
	st->in_string = d && f->in_string;
	st->escape = d && f->escape;
	st->depth = d ? (uint32_t)f->depth : 0;
	/* A text returned but not yet dropped is consumed already. */
	size_t from = f->pending_drop <= f->len ? f->pending_drop : f->len;
	st->unread_len = (uint32_t)(f->len - from);
	st->unread = malloc(st->unread_len ? st->unread_len : 1);
	if (st->unread == NULL)
		return -ENOMEM;
	if (st->unread_len > 0) /* a framer that never had input has no buffer */
		memcpy(st->unread, f->buf + from, st->unread_len);
	return 0;
}

int qmp_framer_put_state(struct qmp_framer *f, const struct qmp_framer_state *st)
{
	uint32_t n = st->unread_len;
	if (n > QMP_MAX_MESSAGE)
		return -EBADMSG;
	struct qmp_framer g;
	qmp_framer_init(&g);
	if (st->discarding) {
		/* Nothing of the skipped text is kept, and where in it we are must
		 * be a place a bracketed (or bare) text can be. */
		if (n != 0 || st->depth > QMP_SKIP_MAX_DEPTH || (st->escape && !st->in_string) ||
		    (st->bracketed ? st->depth == 0 : (st->depth | st->in_string) != 0))
			return -EBADMSG;
		g.in_text = g.discarding = 1;
		g.bracketed = st->bracketed;
		g.in_string = st->in_string;
		g.escape = st->escape;
		g.depth = (int)st->depth;
	} else {
		/* The rest follows from the bytes, framed again. */
		if (st->bracketed || st->in_string || st->escape || st->depth != 0)
			return -EBADMSG;
		if (n > 0 && qmp_framer_push(&g, (const char *)st->unread, n) < 0)
			return -ENOMEM;
		const char *text;
		size_t len;
		if (qmp_framer_next(&g, &text, &len) != QMP_FRAME_NONE) {
			qmp_framer_destroy(&g);
			return -EBADMSG;
		}
	}
	*f = g;
	return 0;
}
