/*
 * Splits a QMP byte stream into JSON texts, as QEMU's JSON streamer does:
 * a text is a balanced {...} or [...] (brackets inside strings do not
 * count); any other run of non-blank bytes outside brackets is a text of
 * its own, which the parser then rejects.  The framer does not parse
 * JSON; it only decides where one request ends.
 */
#ifndef VMM_QMP_FRAMER_H
#define VMM_QMP_FRAMER_H

#include <stddef.h>

#define QMP_MAX_MESSAGE (1u << 20)
#define QMP_MAX_NESTING 1024

struct qmp_framer {
	char *buf; /* a text in progress always starts at buf[0] */
	size_t len, cap;
	size_t scan;         /* bytes of buf already examined */
	size_t pending_drop; /* length of the text returned last time */
	int in_text, bracketed, depth, in_string, escape;
	int discarding;      /* skipping the rest of an oversized text */
};

enum qmp_frame {
	QMP_FRAME_NONE,     /* need more input */
	QMP_FRAME_TEXT,     /* text and len give one complete text */
	QMP_FRAME_TOO_LARGE, /* text over QMP_MAX_MESSAGE or nested too deep: it is
			      * skipped to its end, reported once */
};

void qmp_framer_init(struct qmp_framer *f);
void qmp_framer_destroy(struct qmp_framer *f);
/* Append input; returns 0 or -ENOMEM. */
int qmp_framer_push(struct qmp_framer *f, const char *data, size_t len);
/* Next complete text; valid until the next call. */
enum qmp_frame qmp_framer_next(struct qmp_framer *f, const char **text, size_t *len);

#endif
