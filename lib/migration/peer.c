/*
 * The precopy engine and its destination: the replies it reads (FAILED
 * mid-stream, READY after END) and the GO it sends; see
 * docs/migration-stream.md.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "engine.h"

/*
 * The destination's next reply, within timeout_ms: 1 and rec when it is
 * READY, 0 when nothing came, -EPROTO with e->refused saying why when it
 * gave up (FAILED), hung up or said something out of turn.  A reply that
 * begins but stalls (the channel's stall limit) counts as nothing.
 */
static int read_reply(struct engine *e, int timeout_ms, struct tern_record *rec)
{
	if (e->refused[0] != '\0')
		return -EPROTO;
	if (!e->m->ch->two_way || !e->have_replies ||
	    tern_channel_wait_readable(e->m->ch, timeout_ms) <= 0)
		return 0;
	struct tern_error err = { .msg = "" };
	int rc = tern_stream_read(&e->replies, rec, &err);
	if (rc == -ETIMEDOUT && e->m->ch->stalled)
		return 0;
	if (rc == -ENODATA || rc == -EPIPE || rc == -ECONNRESET)
		snprintf(e->refused, sizeof e->refused, "the destination closed the connection");
	else if (rc < 0)
		snprintf(e->refused, sizeof e->refused, "the destination's reply: %s", err.msg);
	else if (rec->type == TERN_REC_FAILED)
		snprintf(e->refused, sizeof e->refused, "the destination refused the migration: %.*s",
			 (int)(rec->len > 400 ? 400 : rec->len), (const char *)rec->data);
	else if (rec->type != TERN_REC_READY)
		snprintf(e->refused, sizeof e->refused, "the destination sent record 0x%02x out of turn",
			 rec->type);
	else
		return 1;
	return -EPROTO;
}

int engine_peer_check(struct engine *e, int timeout_ms)
{
	if (e->gave_up) /* it did not answer: no reason will come either */
		return 0;
	struct tern_record rec;
	int rc = read_reply(e, timeout_ms, &rec);
	if (rc > 0) {
		snprintf(e->refused, sizeof e->refused, "the destination said READY mid-stream");
		rc = -EPROTO;
	}
	return rc;
}

int engine_give_up(struct engine *e, const char *what, struct tern_error *err)
{
	e->gave_up = 1;
	/* From here no GO can go out, so the destination can never run the
	 * guest; one that is only slow hears at once that it will not. */
	tern_channel_cancel(e->m->ch);
	return tern_errorf(err, -ETIMEDOUT, "the destination did not answer in time: %s for "
			   "%d ms while the guest was stopped (downtime-limit %llu ms + %d ms "
			   "grace); the guest runs here again", what, e->answer_ms,
			   (unsigned long long)e->answer_limit_ms, ENGINE_ANSWER_GRACE_MS);
}

int engine_handshake(struct engine *e, struct tern_error *err)
{
	struct tern_record rec;
	int rc = read_reply(e, e->answer_ms, &rec);
	if (rc < 0)
		return tern_errorf(err, rc, "%s", e->refused);
	if (rc == 0)
		return engine_give_up(e, "no READY after the stream ended", err);
	/* Replies go both ways as control streams of their own, apart from
	 * the frames of the migration stream. */
	struct tern_stream_writer ctl;
	if ((rc = tern_stream_writer_init(&ctl, &e->m->ch->io)) < 0)
		return tern_errorf(err, rc, "out of memory");
	if ((rc = tern_stream_control(&ctl, TERN_REC_GO, NULL)) < 0)
		tern_errorf(err, rc, "sending GO: %s", strerror(-rc));
	e->w.bytes += ctl.bytes;
	tern_stream_writer_destroy(&ctl);
	return rc;
}
