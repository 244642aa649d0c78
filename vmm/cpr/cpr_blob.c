/* The live-update state blob; see cpr_blob.h. */
#include "cpr/cpr_blob.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tern/crc32c.h"

static const char magic[8] = "TERNCPR";
#define PREAMBLE (8 + 4 + 4 + 8)

static const struct tern_vmstate_field header_fields[] = {
	TERN_VMS_FIELD_STRING(struct cpr_header, mode, 0),
	TERN_VMS_FIELD_U64(struct cpr_header, memory, 0),
	TERN_VMS_FIELD_U32(struct cpr_header, vcpus, 0),
	TERN_VMS_FIELD_U32(struct cpr_header, memslots, 0),
	TERN_VMS_FIELD_U32(struct cpr_header, dirty_mode, 0),
	TERN_VMS_FIELD_U32(struct cpr_header, dirty_ring_entries, 0),
	TERN_VMS_FIELD_VARRAY_STRING_AS("devices", struct cpr_header, device, ndevices, 0),
	TERN_VMS_FIELD_STRING(struct cpr_header, serial, 0),
	TERN_VMS_FIELD_STRING(struct cpr_header, qmp, 0),
	TERN_VMS_FIELD_U32(struct cpr_header, guest_paused, 0),
	TERN_VMS_FIELD_U64(struct cpr_header, stop_ns, 0),
	TERN_VMS_FIELD_U64(struct cpr_header, saved_ns, 0),
	TERN_VMS_FIELD_HASH(struct cpr_header, fds, &tern_fdstore_hash, 0),
	TERN_VMS_FIELD_END,
};

static int header_post_load(void *obj, uint32_t version, struct tern_error *err)
{
	(void)version;
	const struct cpr_header *h = obj;
	if (strcmp(h->mode, "cpr-exec") != 0 && strcmp(h->mode, "cpr-transfer") != 0)
		return tern_errorf(err, -EINVAL, "unknown update mode '%s'", h->mode);
	if (h->vcpus == 0 || h->vcpus > 1024 || h->memory == 0 || h->guest_paused > 1 ||
	    h->dirty_mode > 1)
		return tern_errorf(err, -EINVAL, "a machine with %u vCPUs and %llu bytes of RAM is "
				   "not one tern saves", h->vcpus, (unsigned long long)h->memory);
	if (h->stop_ns > h->saved_ns)
		return tern_errorf(err, -EINVAL, "the state was saved before the guest stopped");
	return 0;
}

const struct tern_vmstate_desc cpr_header_desc = {
	.name = "cpr",
	.size = sizeof(struct cpr_header),
	.version = 1,
	.min_version = 1,
	.fields = header_fields,
	.post_load = header_post_load,
};

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

int cpr_blob_begin(struct tern_buf *out, const struct cpr_header *hdr)
{
	uint8_t preamble[PREAMBLE] = { 0 };
	memcpy(preamble, magic, sizeof magic);
	tern_buf_put(out, preamble, sizeof preamble);
	tern_buf_u32(out, 0); /* the header's length, known once it is saved */
	size_t at = out->len;
	int rc = tern_vmstate_save(&cpr_header_desc, hdr, out);
	if (rc == 0)
		put_le32(out->data + at - 4, (uint32_t)(out->len - at));
	return rc;
}

int cpr_blob_section(struct tern_buf *out, const char *name, const uint8_t *data, size_t len)
{
	size_t nlen = strlen(name);
	if (nlen == 0 || nlen >= sizeof(((struct cpr_section *)0)->name) || len > UINT32_MAX)
		return -EINVAL;
	tern_buf_u8(out, (uint8_t)nlen);
	tern_buf_put(out, name, nlen);
	tern_buf_u32(out, (uint32_t)len);
	tern_buf_put(out, data, len);
	return out->failed ? -ENOMEM : 0;
}

int cpr_blob_finish(struct tern_buf *out)
{
	tern_buf_u8(out, 0);
	if (out->failed)
		return -ENOMEM;
	size_t body = out->len - PREAMBLE;
	put_le32(out->data + 8, CPR_FORMAT_VERSION);
	put_le32(out->data + 12, tern_crc32c(0, out->data + PREAMBLE, body));
	for (int i = 0; i < 8; i++)
		out->data[16 + i] = (uint8_t)((uint64_t)body >> (8 * i));
	return 0;
}

static int parse_sections(struct tern_reader *r, struct cpr_blob_in *in, struct tern_error *err)
{
	unsigned cap = 0;
	for (;;) {
		uint8_t nlen;
		if (tern_read_u8(r, &nlen) < 0)
			return tern_errorf(err, -EBADMSG, "the state ends before its end marker");
		if (nlen == 0)
			break;
		if (in->sections == CPR_MAX_SECTIONS)
			return tern_errorf(err, -EBADMSG, "more than %u sections", CPR_MAX_SECTIONS);
		if (in->sections == cap) {
			cap = cap ? 2 * cap : 16;
			struct cpr_section *s = realloc(in->section, cap * sizeof *s);
			if (s == NULL)
				return tern_errorf(err, -ENOMEM, "out of memory");
			in->section = s;
		}
		struct cpr_section *s = &in->section[in->sections];
		uint32_t len;
		if (nlen >= sizeof s->name || tern_read_bytes(r, s->name, nlen) < 0 ||
		    tern_read_u32(r, &len) < 0 || len > r->len - r->at)
			return tern_errorf(err, -EBADMSG, "section %u is cut short or malformed",
					   in->sections);
		s->name[nlen] = '\0';
		if (memchr(s->name, '\0', nlen) != NULL)
			return tern_errorf(err, -EBADMSG, "section %u has a NUL in its name",
					   in->sections);
		s->data = r->p + r->at;
		s->len = len;
		r->at += len;
		in->sections++;
	}
	if (r->at != r->len)
		return tern_errorf(err, -EBADMSG, "%zu bytes after the last section", r->len - r->at);
	return 0;
}

int cpr_blob_parse(const uint8_t *blob, size_t len, struct cpr_blob_in *in,
		   struct tern_error *err)
{
	memset(in, 0, sizeof *in);
	if (len < PREAMBLE || memcmp(blob, magic, sizeof magic) != 0)
		return tern_errorf(err, -EBADMSG, "not a tern live-update state");
	struct tern_reader r = { blob, len, 8 };
	uint32_t version, crc;
	uint64_t body;
	tern_read_u32(&r, &version);
	tern_read_u32(&r, &crc);
	tern_read_u64(&r, &body);
	if (version < CPR_FORMAT_MIN || version > CPR_FORMAT_VERSION)
		return tern_errorf(err, -EPROTO, "live-update state format %u, saved by a tern %s "
				   "than this one, which loads formats %u to %u", version,
				   version < CPR_FORMAT_MIN ? "older" : "newer", CPR_FORMAT_MIN,
				   CPR_FORMAT_VERSION);
	if (body != len - PREAMBLE)
		return tern_errorf(err, -EBADMSG, "the state claims %llu bytes, %zu are there",
				   (unsigned long long)body, len - PREAMBLE);
	if (tern_crc32c(0, blob + PREAMBLE, (size_t)body) != crc)
		return tern_errorf(err, -EBADMSG, "the state is corrupt (checksum mismatch)");
	struct tern_reader sr = { blob + PREAMBLE, (size_t)body, 0 };
	uint32_t hlen;
	if (tern_read_u32(&sr, &hlen) < 0 || hlen > sr.len - sr.at)
		return tern_errorf(err, -EBADMSG, "the state's header is cut short");
	int rc = tern_vmstate_load(&cpr_header_desc, &in->hdr, sr.p + sr.at, hlen, err);
	if (rc < 0) {
		tern_error_prefix(err, "live-update state");
		return rc;
	}
	sr.at += hlen;
	rc = parse_sections(&sr, in, err);
	if (rc < 0)
		cpr_blob_in_free(in);
	return rc;
}

void cpr_blob_in_free(struct cpr_blob_in *in)
{
	tern_fdstore_free(in->hdr.fds);
	free(in->section);
	memset(in, 0, sizeof *in);
}
