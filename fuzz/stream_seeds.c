/*
 * Seeds for fuzz_stream: small but complete migration streams (every kind
 * of record, the VMM's state sections), written into DIR both as framed
 * payloads and as raw bytes.  Run by fuzz/run; nothing here is committed.
 *
 *   stream_seeds DIR
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness/frames.h"
#include "../harness/memio.h"
#include "machine/vm.h"
#include "machine/vm_state.h"
#include "tern/stream.h"

static void section(struct tern_stream_writer *w, const char *name,
		    const struct tern_vmstate_desc *d, const void *obj)
{
	struct tern_buf b = { 0 };
	tern_vmstate_save(d, obj, &b);
	tern_stream_section(w, name, b.data, b.len);
	tern_buf_free(&b);
	tern_stream_flush(w);
}

static void write_seed(const char *dir, const char *name, int framed, const struct memio *s)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (f == NULL) {
		perror(path);
		exit(1);
	}
	fputc(framed, f);
	if (framed) {
		struct memio p;
		memio_init(&p);
		if (payloads_from_frames(&p, s->data, s->len) != 0) {
			fprintf(stderr, "stream_seeds: a frame too large for a seed\n");
			exit(1);
		}
		fwrite(p.data, 1, p.len, f);
		memio_free(&p);
	} else {
		fwrite(s->data, 1, s->len, f);
	}
	fclose(f);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: stream_seeds DIR\n");
		return 2;
	}
	static uint8_t page[4096];
	for (size_t i = 0; i < sizeof page; i++)
		page[i] = (uint8_t)(i * 31 + 7);
	const uint8_t delta[] = { 0x00, 0x02, 0xaa, 0xbb, 0x10, 0x01, 0xcc };
	static struct vcpu_state cpu;
	static struct kvm_vm_state kvm;
	static struct uart_state uart;
	cpu.xsave_len = 4096;
	cpu.nmsrs = 2;
	cpu.msrs[0] = (struct vcpu_msr){ 0x10, 12345 };
	cpu.msrs[1] = (struct vcpu_msr){ 0x174, 8 };
	uart.rx_count = 3;
	memcpy(uart.rx, "abc", 3);

	static struct vm machine; /* only its shape is read */
	struct vm *shape = &machine;
	shape->vcpus = 2;
	for (int xbzrle = 0; xbzrle < 2; xbzrle++) {
		struct memio s;
		memio_init(&s);
		struct tern_stream_writer w;
		tern_stream_writer_init(&w, &s.io);
		struct tern_stream_hello h = {
			.version = TERN_STREAM_VERSION, .page_size = 4096,
			.flags = xbzrle ? TERN_STREAM_XBZRLE_FLAG : 0, .ranges = 2,
			.range = { { 0, 64 * 4096 }, { 4ULL << 30, 16 * 4096 } },
		};
		tern_stream_hello(&w, &h);
		struct tern_error err = { .msg = "" };
		vm_state_save_shape(shape, &w, &err); /* as a source sends it, after HELLO */
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
		section(&w, "kvm", &kvm_vm_state_desc, &kvm);
		section(&w, "cpu/0", &vcpu_state_desc, &cpu);
		section(&w, "cpu/1", &vcpu_state_desc, &cpu);
		section(&w, "uart", &uart_state_desc, &uart);
		tern_stream_end(&w);
		tern_stream_writer_destroy(&w);
		write_seed(argv[1], xbzrle ? "framed-deltas" : "framed", 1, &s);
		write_seed(argv[1], xbzrle ? "raw-deltas" : "raw", 0, &s);
		memio_free(&s);
	}
	return 0;
}
