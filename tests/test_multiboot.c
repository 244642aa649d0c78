/* Multiboot image parsing (untrusted input) and the information block. */
#include <elf.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "machine/builtin_guest.h"
#include "tern/multiboot.h"

#define MB_MAGIC 0x1BADB002u

/* A minimal ELF32 multiboot kernel: header at file offset 0x100 inside the
 * first segment, loaded at 1 MiB. */
struct fake_elf {
	uint8_t bytes[0x3000];
	size_t len;
};

static void put_header(uint8_t *at, uint32_t flags)
{
	uint32_t h[3] = { MB_MAGIC, flags, -(MB_MAGIC + flags) };
	memcpy(at, h, sizeof h);
}

static void make_elf(struct fake_elf *f, unsigned nseg)
{
	memset(f, 0, sizeof *f);
	Elf32_Ehdr eh = { 0 };
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS32;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_type = ET_EXEC;
	eh.e_machine = EM_386;
	eh.e_version = EV_CURRENT;
	eh.e_entry = 0x100010;
	eh.e_phoff = sizeof eh;
	eh.e_phentsize = sizeof(Elf32_Phdr);
	eh.e_phnum = (Elf32_Half)nseg;
	eh.e_ehsize = sizeof eh;
	memcpy(f->bytes, &eh, sizeof eh);
	for (unsigned i = 0; i < nseg; i++) {
		Elf32_Phdr ph = {
			.p_type = PT_LOAD,
			.p_offset = 0x1000 * (i + 1),
			.p_vaddr = 0x100000 + 0x1000 * i,
			.p_paddr = 0x100000 + 0x1000 * i,
			.p_filesz = 0x800,
			.p_memsz = 0x1000,
			.p_flags = PF_R | PF_X,
		};
		memcpy(f->bytes + sizeof eh + i * sizeof ph, &ph, sizeof ph);
	}
	put_header(f->bytes + 0x1000, 0x3);
	f->len = 0x1000 * (nseg + 1);
}

static Elf32_Phdr *phdr(struct fake_elf *f, unsigned i)
{
	return (Elf32_Phdr *)(f->bytes + sizeof(Elf32_Ehdr) + i * sizeof(Elf32_Phdr));
}

static void builtin_guest_parses(void **state)
{
	(void)state;
	struct tern_multiboot_image img;
	struct tern_error err;
	int rc = tern_multiboot_parse(tern_builtin_guest, tern_builtin_guest_size(), &img, &err);
	assert_int_equal(rc, 0);
	assert_int_equal(img.segments, 2);
	assert_int_equal(img.low, 0x100000);
	assert_true(img.entry >= img.low && img.entry < img.high);
	assert_true(img.segment[1].mem_size > img.segment[1].file_size); /* bss */
}

static void elf32_segments_and_entry(void **state)
{
	(void)state;
	struct fake_elf f;
	make_elf(&f, 2);
	struct tern_multiboot_image img;
	assert_int_equal(tern_multiboot_parse(f.bytes, f.len, &img, NULL), 0);
	assert_int_equal(img.segments, 2);
	assert_int_equal(img.segment[0].addr, 0x100000);
	assert_int_equal(img.segment[0].file_offset, 0x1000);
	assert_int_equal(img.segment[0].file_size, 0x800);
	assert_int_equal(img.segment[1].mem_size, 0x1000);
	assert_int_equal(img.entry, 0x100010);
	assert_int_equal(img.high, 0x102000);
}

static void entry_translated_when_virtual(void **state)
{
	(void)state;
	struct fake_elf f;
	make_elf(&f, 1);
	phdr(&f, 0)->p_vaddr = 0xc0100000;
	((Elf32_Ehdr *)f.bytes)->e_entry = 0xc0100020;
	struct tern_multiboot_image img;
	assert_int_equal(tern_multiboot_parse(f.bytes, f.len, &img, NULL), 0);
	assert_int_equal(img.entry, 0x100020);
}

static void expect_refused(const uint8_t *bytes, size_t len, int code, const char *words)
{
	struct tern_multiboot_image img;
	struct tern_error err = { .msg = "" };
	assert_int_equal(tern_multiboot_parse(bytes, len, &img, &err), code);
	if (strstr(err.msg, words) == NULL)
		fail_msg("error '%s' does not mention '%s'", err.msg, words);
}

static void hostile_images_refused(void **state)
{
	(void)state;
	struct fake_elf f;

	make_elf(&f, 1);
	expect_refused(f.bytes, 0x1000, -ENOEXEC, "no multiboot header"); /* header cut off */

	make_elf(&f, 1);
	f.bytes[0x1008] ^= 1; /* checksum */
	expect_refused(f.bytes, f.len, -ENOEXEC, "no multiboot header");

	make_elf(&f, 1);
	phdr(&f, 0)->p_filesz = 0x2000; /* past the end of file */
	phdr(&f, 0)->p_memsz = 0x2000;
	expect_refused(f.bytes, f.len, -EINVAL, "past the end");

	make_elf(&f, 1);
	phdr(&f, 0)->p_filesz = 0x1001; /* more file than memory */
	expect_refused(f.bytes, f.len, -EINVAL, "exceeds memory size");

	make_elf(&f, 1);
	phdr(&f, 0)->p_paddr = 0xfffff800; /* wraps past 4 GiB */
	phdr(&f, 0)->p_vaddr = 0xfffff800;
	expect_refused(f.bytes, f.len, -EINVAL, "below 4 GiB");

	make_elf(&f, 2);
	phdr(&f, 1)->p_paddr = 0x100800; /* overlaps segment 0 */
	expect_refused(f.bytes, f.len, -EINVAL, "overlap");

	make_elf(&f, 1);
	((Elf32_Ehdr *)f.bytes)->e_entry = 0x200000;
	expect_refused(f.bytes, f.len, -ENOEXEC, "entry point");

	make_elf(&f, 1);
	((Elf32_Ehdr *)f.bytes)->e_phnum = 0xffff; /* headers past the end */
	expect_refused(f.bytes, f.len, -ENOEXEC, "program headers");

	make_elf(&f, 1);
	((Elf32_Ehdr *)f.bytes)->e_machine = EM_ARM;
	expect_refused(f.bytes, f.len, -ENOEXEC, "not i386");

	make_elf(&f, 1);
	f.bytes[EI_CLASS] = ELFCLASS64;
	expect_refused(f.bytes, f.len, -ENOEXEC, "x86-64");

	make_elf(&f, 1);
	put_header(f.bytes + 0x1000, 0x3 | 0x8); /* a required feature we lack */
	expect_refused(f.bytes, f.len, -ENOTSUP, "features");

	make_elf(&f, 1);
	phdr(&f, 0)->p_type = PT_NOTE; /* nothing to load */
	expect_refused(f.bytes, f.len, -ENOEXEC, "nothing to load");

	uint8_t garbage[64] = { 0 };
	put_header(garbage + 8, 0);
	expect_refused(garbage, sizeof garbage, -ENOEXEC, "neither an ELF");
}

static void aout_kludge(void **state)
{
	(void)state;
	uint8_t img_bytes[0x2000] = { 0 };
	/* Header at offset 0x40 describing: file loaded from offset 0 at
	 * 0x200000, 0x1800 bytes, bss to 0x203000, entry 0x200100. */
	uint32_t h[8] = { MB_MAGIC, 0x10003, -(MB_MAGIC + 0x10003), 0x200040, 0x200000,
			  0x201800, 0x203000, 0x200100 };
	memcpy(img_bytes + 0x40, h, sizeof h);
	struct tern_multiboot_image img;
	assert_int_equal(tern_multiboot_parse(img_bytes, sizeof img_bytes, &img, NULL), 0);
	assert_int_equal(img.segments, 1);
	assert_int_equal(img.segment[0].addr, 0x200000);
	assert_int_equal(img.segment[0].file_offset, 0);
	assert_int_equal(img.segment[0].file_size, 0x1800);
	assert_int_equal(img.segment[0].mem_size, 0x3000);
	assert_int_equal(img.entry, 0x200100);

	h[4] = 0x100000; /* load_addr far below header_addr: before file start */
	h[2] = -(MB_MAGIC + 0x10003);
	memcpy(img_bytes + 0x40, h, sizeof h);
	expect_refused(img_bytes, sizeof img_bytes, -EINVAL, "load_addr");

	uint32_t h2[8] = { MB_MAGIC, 0x10003, -(MB_MAGIC + 0x10003), 0x200040, 0x200000,
			   0x203000, 0, 0x200100 }; /* load_end past the file */
	memcpy(img_bytes + 0x40, h2, sizeof h2);
	expect_refused(img_bytes, sizeof img_bytes, -EINVAL, "past the end");
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static void info_block_layout(void **state)
{
	(void)state;
	uint8_t buf[4096];
	const struct tern_memory_range map[] = {
		{ 0, 0x9fc00, TERN_E820_RAM },
		{ 0xf0000, 0x10000, TERN_E820_RESERVED },
		{ 0x100000, 0x1ff00000, TERN_E820_RAM },
	};
	const uint32_t base = 0x9000;
	int n = tern_multiboot_build_info(buf, sizeof buf, base, "tern-guest ws=1M", map, 3, NULL);
	assert_true(n > 0 && n < (int)sizeof buf);
	uint32_t flags = rd32(buf);
	assert_int_equal(flags & 0x245, 0x245); /* memory, cmdline, mmap, name */
	assert_int_equal(rd32(buf + 4), 0x9fc00 >> 10);
	assert_int_equal(rd32(buf + 8), 0x1ff00000 >> 10);
	uint32_t cmd = rd32(buf + 16) - base;
	assert_string_equal((const char *)buf + cmd, "tern-guest ws=1M");
	uint32_t mmap_len = rd32(buf + 44), mmap = rd32(buf + 48) - base;
	assert_int_equal(mmap_len, 3 * 24);
	assert_int_equal(rd32(buf + mmap), 20);         /* entry size field */
	assert_int_equal(rd32(buf + mmap + 24 + 20), 2); /* second entry reserved */
	uint64_t addr;
	memcpy(&addr, buf + mmap + 48 + 4, 8);
	assert_int_equal(addr, 0x100000);
	assert_string_equal((const char *)buf + rd32(buf + 64) - base, "tern");

	struct tern_error err;
	assert_int_equal(tern_multiboot_build_info(buf, 100, base, "x", map, 3, &err), -E2BIG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(builtin_guest_parses),
		cmocka_unit_test(elf32_segments_and_entry),
		cmocka_unit_test(entry_translated_when_virtual),
		cmocka_unit_test(hostile_images_refused),
		cmocka_unit_test(aout_kludge),
		cmocka_unit_test(info_block_layout),
	};
	return cmocka_run_group_tests_name("multiboot", tests, NULL, NULL);
}
