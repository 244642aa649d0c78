/*
 * Splits a QMP byte stream into JSON texts, as QEMU's JSON streamer does:
 * a text is a balanced {...} or [...] (brackets inside strings do not
 * count); any other run of non-blank bytes outside brackets is a text of
 * its own, which the parser then rejects.  The framer does not parse
 * JSON; it only decides where one request ends.
 *
 * A text that grows past QMP_MAX_MESSAGE bytes or QMP_MAX_NESTING levels is
 * reported at once and skipped to its end: where its brackets balance (a
 * bare word: its first blank), or its line end, whichever comes first.  A
 * raw line end is never inside a valid JSON text, and without it a request
 * that never closes would swallow every one after it.
 */
#ifndef VMM_QMP_FRAMER_H
#define VMM_QMP_FRAMER_H

#include <stddef.h>

#include "tern/buf.h"
#include "tern/vmstate.h"

#define QMP_MAX_MESSAGE (1u << 20)
#define QMP_MAX_NESTING 1024
#define QMP_SKIP_MAX_DEPTH (1 << 20) /* brackets counted in a skipped text */

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
	QMP_FRAME_TOO_LARGE, /* a text over QMP_MAX_MESSAGE, */
	QMP_FRAME_TOO_DEEP,  /* or nested over QMP_MAX_NESTING: it is skipped to
			      * its end (see above), reported once */
};

void qmp_framer_init(struct qmp_framer *f);
void qmp_framer_destroy(struct qmp_framer *f);
/* Append input; returns 0 or -ENOMEM. */
int qmp_framer_push(struct qmp_framer *f, const char *data, size_t len);
/* Next complete text; valid until the next call. */
enum qmp_frame qmp_framer_next(struct qmp_framer *f, const char **text, size_t *len);

/*
 * A live update carries what a client sent that no request has consumed
 * yet (call after qmp_framer_next said NONE): u8 discarding, then, when
 * discarding an oversized text, how far into it (u8 bracketed, u8
 * in_string, u8 escape, u32 depth up to QMP_SKIP_MAX_DEPTH; else all 0),
 * u32 n and the n bytes of
 * the unfinished text.  Loading checks every field and refuses bytes that
 * hold a whole request (one is never left unread); on success f is a
 * fresh framer in the saved state, else untouched.  -EBADMSG, -ENOMEM.
 */
/* Where a framer is, for a live update: the position in a skipped text,
 * and the bytes no request has consumed yet. */
struct qmp_framer_state {
	bool discarding, bracketed, in_string, escape;
	uint32_t depth;
	uint32_t unread_len;
	uint8_t *unread; /* malloc'd: the caller frees it */
};
extern const struct tern_vmstate_desc qmp_framer_state_desc;
int qmp_framer_get_state(const struct qmp_framer *f, struct qmp_framer_state *st);
/* Rebuild f from st, checked; on failure f is untouched. */
int qmp_framer_put_state(struct qmp_framer *f, const struct qmp_framer_state *st);

#endif
