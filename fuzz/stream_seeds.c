/*
 * Seeds for fuzz_stream and fuzz_cpr_state, written into DIR; run by
 * fuzz/run, nothing here is committed.
 *
 *   stream_seeds DIR [STREAM ...]   small but complete migration streams
 *       (every kind of record; the VMM's sections; a section of every
 *       registered state type; the sections of each STREAM, a migration
 *       file such as tests/golden/mig-1vcpu.tmf, behind this target's
 *       HELLO), each as framed payloads and as raw bytes
 *   stream_seeds -cpr DIR            live-update states with a section of
 *       every registered state type: whole, and the body after the
 *       preamble (fuzz_cpr_state puts a good preamble before its input)
 *
 * A type without a sample object here gets one made from its description
 * alone (every count 1, every number 1): well formed, though its checks
 * after loading may refuse it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness/frames.h"
#include "../harness/memio.h"
#include "cpr/cpr_blob.h"
#include "devices/uart.h"
#include "kvm/kvm_state.h"
#include "kvm/vcpu_state.h"
#include "machine/vm.h"
#include "machine/vm_shape.h"
#include "machine/vm_state.h"
#include "tern/stream.h"

static void die(const char *what)
{
	fprintf(stderr, "stream_seeds: %s\n", what);
	exit(1);
}

/* ------------------------------------------------------------ state */

static struct vcpu_state cpu;
static struct kvm_vm_state kvm;
static struct uart_state uart;
static struct vm machine; /* only its shape is read */

static void samples_init(void)
{
	cpu.xsave_len = 4096;
	cpu.nmsrs = 2;
	cpu.msrs[0] = (struct vcpu_msr){ 0x10, 12345 };
	cpu.msrs[1] = (struct vcpu_msr){ 0x174, 8 };
	uart.rx_count = 3;
	memcpy(uart.rx, "abc", 3);
	machine.vcpus = 2;
}

static void le(struct tern_buf *b, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		tern_buf_u8(b, (uint8_t)(v >> (8 * i)));
}

static void made_up(const struct tern_vmstate_desc *d, struct tern_buf *b, unsigned depth);

static void made_up_element(enum tern_vms_type t, const struct tern_vmstate_field *f,
			    struct tern_buf *b, unsigned depth)
{
	static const uint8_t zeros[4096];
	switch (t) {
	case TERN_VMS_U8: case TERN_VMS_BOOL: le(b, 1, 1); break;
	case TERN_VMS_U16: le(b, 1, 2); break;
	case TERN_VMS_U32: case TERN_VMS_I32: le(b, 1, 4); break;
	case TERN_VMS_U64: case TERN_VMS_I64: le(b, 1, 8); break;
	case TERN_VMS_BUFFER:
		for (size_t n = f->size; n > 0; n -= n < sizeof zeros ? n : sizeof zeros)
			tern_buf_put(b, zeros, n < sizeof zeros ? n : sizeof zeros);
		break;
	case TERN_VMS_STRING:
		le(b, f->size > 1, 1);
		if (f->size > 1)
			tern_buf_u8(b, 'a');
		break;
	case TERN_VMS_STRUCT: made_up(f->sub, b, depth + 1); break;
	default: break;
	}
}

/* An object of d built from its description alone. */
static void made_up(const struct tern_vmstate_desc *d, struct tern_buf *b, unsigned depth)
{
	size_t n = strlen(d->name);
	tern_buf_u8(b, (uint8_t)n);
	tern_buf_put(b, d->name, n);
	tern_buf_u32(b, d->version);
	for (const struct tern_vmstate_field *f = d->fields; depth < 16 && f && f->name; f++) {
		if (f->since > d->version)
			continue;
		switch (f->type) {
		case TERN_VMS_ARRAY:
			for (uint32_t i = 0; i < f->count; i++)
				made_up_element(f->elem, f, b, depth);
			break;
		case TERN_VMS_VARRAY:
		case TERN_VMS_VARRAY_PTR:
			tern_buf_u32(b, 1);
			made_up_element(f->elem, f, b, depth);
			break;
		case TERN_VMS_CUSTOM: le(b, 0, 8); break;
		case TERN_VMS_HASH: tern_buf_u32(b, 0); break;
		default: made_up_element(f->type, f, b, depth);
		}
	}
	tern_buf_u8(b, 0); /* no subsections */
}

/* Type t's section, from a sample where there is one. */
static void section_of(const struct vm_state_type *t, struct tern_buf *b)
{
	struct tern_error err = { .msg = "" };
	int rc = 0;
	if (t == &vcpu_state_type)
		rc = tern_vmstate_save(t->desc, &cpu, b);
	else if (t == &kvm_state_type)
		rc = tern_vmstate_save(t->desc, &kvm, b);
	else if (t == &uart_state_type)
		rc = tern_vmstate_save(t->desc, &uart, b);
	else if (t == &machine_shape_type)
		rc = vm_state_save_one(t, &machine, b, &err);
	else
		made_up(t->desc, b, 0);
	if (rc < 0 || b->failed)
		die("cannot save a sample section");
}

typedef void (*each_fn)(void *ctx, const char *name, const uint8_t *data, size_t len);

/* A section of every type linked in ("cpu/0" for numbered ones). */
static void every_type(each_fn fn, void *ctx)
{
	size_t cursor = 0;
	for (const struct vm_state_type *t; (t = vm_state_types_next(&cursor)) != NULL;) {
		char name[VM_STATE_NAME_MAX];
		snprintf(name, sizeof name, "%s%s", t->name, t->flags & VM_STATE_NUMBERED ? "/0" : "");
		struct tern_buf b = { 0 };
		section_of(t, &b);
		fn(ctx, name, b.data, b.len);
		tern_buf_free(&b);
	}
}

/* ------------------------------------------------------------ streams */

static void write_file(const char *dir, const char *name, const void *prefix, size_t plen,
		       const void *data, size_t len)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (f == NULL || fwrite(prefix, 1, plen, f) != plen || fwrite(data, 1, len, f) != len ||
	    fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

/* fuzz_stream's input: a byte choosing framed (1) or raw (0), then the stream. */
static void write_seed(const char *dir, const char *name, int framed, const struct memio *s)
{
	uint8_t mode = (uint8_t)framed;
	if (!framed) {
		write_file(dir, name, &mode, 1, s->data, s->len);
		return;
	}
	struct memio p;
	memio_init(&p);
	if (payloads_from_frames(&p, s->data, s->len) != 0)
		die("a frame too large for a seed");
	write_file(dir, name, &mode, 1, p.data, p.len);
	memio_free(&p);
}

static void stream_begin(struct memio *s, struct tern_stream_writer *w, int xbzrle)
{
	memio_init(s);
	tern_stream_writer_init(w, &s->io);
	/* fuzz_stream's guest: 64 pages at 0, 16 at 4 GiB. */
	struct tern_stream_hello h = {
		.version = TERN_STREAM_VERSION, .page_size = 4096,
		.flags = xbzrle ? TERN_STREAM_XBZRLE_FLAG : 0, .ranges = 2,
		.range = { { 0, 64 * 4096 }, { 4ULL << 30, 16 * 4096 } },
	};
	tern_stream_hello(w, &h);
}

static void stream_section(void *ctx, const char *name, const uint8_t *data, size_t len)
{
	struct tern_stream_writer *w = ctx;
	tern_stream_section(w, name, data, len);
	tern_stream_flush(w);
}

static void stream_finish(const char *dir, const char *name, struct memio *s,
			  struct tern_stream_writer *w)
{
	tern_stream_end(w);
	if (w->error)
		die("cannot write a stream");
	tern_stream_writer_destroy(w);
	char framed[300], raw[300];
	snprintf(framed, sizeof framed, "framed-%s", name);
	snprintf(raw, sizeof raw, "raw-%s", name);
	write_seed(dir, framed, 1, s);
	write_seed(dir, raw, 0, s);
	memio_free(s);
}

/* Every kind of record, then the sections a two-vCPU machine sends. */
static void records(const char *dir, int xbzrle)
{
	static uint8_t page[4096];
	for (size_t i = 0; i < sizeof page; i++)
		page[i] = (uint8_t)(i * 31 + 7);
	const uint8_t delta[] = { 0x00, 0x02, 0xaa, 0xbb, 0x10, 0x01, 0xcc };
	struct memio s;
	struct tern_stream_writer w;
	stream_begin(&s, &w, xbzrle);
	struct tern_buf b = { 0 };
	section_of(&machine_shape_type, &b); /* as a source sends it, after HELLO */
	stream_section(&w, "machine", b.data, b.len);
	tern_buf_free(&b);
	tern_stream_zero_run(&w, 0, 3);
	tern_stream_raw(&w, 3, page);
	tern_stream_flush(&w);
	tern_stream_raw(&w, 10, page);
	if (xbzrle) {
		tern_stream_xbzrle(&w, 10, delta, sizeof delta);
		tern_stream_blocks(&w, 3, 0x8000000000000101ULL, page);
	}
	tern_stream_zero(&w, (4ULL << 30) / 4096 + 15);
	tern_stream_sync(&w, 1);
	const struct { const char *name; const struct vm_state_type *t; } sections[] = {
		{ "kvm", &kvm_state_type }, { "cpu/0", &vcpu_state_type },
		{ "cpu/1", &vcpu_state_type }, { "uart", &uart_state_type },
	};
	for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++) {
		section_of(sections[i].t, &b);
		stream_section(&w, sections[i].name, b.data, b.len);
		tern_buf_free(&b);
	}
	stream_finish(dir, xbzrle ? "deltas" : "plain", &s, &w);
}

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		perror(path);
		exit(1);
	}
	struct tern_buf b = { 0 };
	uint8_t chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		tern_buf_put(&b, chunk, n);
	fclose(f);
	if (b.failed)
		die("out of memory");
	*len = b.len;
	return b.data;
}

/* The sections of a real migration file, behind this target's HELLO. */
static void real_sections(const char *dir, const char *path)
{
	size_t len;
	uint8_t *file = slurp(path, &len);
	struct memio in;
	memio_init_reader(&in, file, len);
	struct tern_stream_reader r;
	tern_stream_reader_init(&r, &in.io);
	r.file = 1;
	struct memio s;
	struct tern_stream_writer w;
	stream_begin(&s, &w, 0);
	struct tern_error err = { .msg = "" };
	struct tern_record rec;
	do {
		if (tern_stream_read(&r, &rec, &err) < 0) {
			fprintf(stderr, "stream_seeds: %s: %s\n", path, err.msg);
			exit(1);
		}
		if (rec.type == TERN_REC_SECTION)
			stream_section(&w, rec.name, rec.data, rec.len);
	} while (rec.type != TERN_REC_END);
	tern_stream_reader_destroy(&r);
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	char name[256];
	snprintf(name, sizeof name, "sections-of-%s", base);
	stream_finish(dir, name, &s, &w);
	free(file);
}

/* ------------------------------------------------------------ live update */

static void cpr_section(void *ctx, const char *name, const uint8_t *data, size_t len)
{
	if (cpr_blob_section(ctx, name, data, len) < 0)
		die("cannot add a section");
}

static void cpr_seeds(const char *dir)
{
	struct cpr_header h = {
		.mode = "cpr-exec", .memory = 16 << 20, .vcpus = 1, .memslots = 1,
		.serial = "stdio", .qmp = "unix:/tmp/vm.qmp", .stop_ns = 1, .saved_ns = 2,
		.fds = tern_fdstore_new(),
	};
	struct tern_error err = { .msg = "" };
	if (h.fds == NULL || tern_fdstore_add(h.fds, "ram/memfd", 0, 3, &err) < 0 ||
	    tern_fdstore_add(h.fds, "qmp/client", 7, 9, &err) < 0)
		die("cannot fill an fd store");
	struct tern_buf b = { 0 };
	if (cpr_blob_begin(&b, &h) < 0)
		die("cannot save a header");
	every_type(cpr_section, &b);
	if (cpr_blob_finish(&b) < 0)
		die("cannot finish a state");
	write_file(dir, "blob-every-type", "", 0, b.data, b.len);
	write_file(dir, "body-every-type", "", 0, b.data + 24, b.len - 24);
	tern_buf_free(&b);
	tern_fdstore_free(h.fds);
}

int main(int argc, char **argv)
{
	samples_init();
	if (argc == 3 && strcmp(argv[1], "-cpr") == 0) {
		cpr_seeds(argv[2]);
		return 0;
	}
	if (argc < 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: stream_seeds DIR [STREAM ...] | stream_seeds -cpr DIR\n");
		return 2;
	}
	records(argv[1], 0);
	records(argv[1], 1);
	struct memio s;
	struct tern_stream_writer w;
	stream_begin(&s, &w, 0);
	every_type(stream_section, &w);
	stream_finish(argv[1], "every-type", &s, &w);
	for (int i = 2; i < argc; i++)
		real_sections(argv[1], argv[i]);
	return 0;
}
