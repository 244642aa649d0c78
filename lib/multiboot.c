/* Multiboot v1 image parsing and information block; see the header. */
#include "tern/multiboot.h"

#include <elf.h>
#include <errno.h>
#include <string.h>

#define MB_FLAG_AOUT_KLUDGE (1u << 16)
/* Flag bits 0-15 a loader must understand; we know 0 (align), 1 (memory
 * info) and 2 (video mode, which a headless VM may ignore). */
#define MB_FLAGS_REQUIRED_KNOWN 0x0007u

#define MBI_MEMORY (1u << 0)
#define MBI_CMDLINE (1u << 2)
#define MBI_MMAP (1u << 6)
#define MBI_LOADER_NAME (1u << 9)

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

/* Returns the header's file offset, or -1. */
static long find_header(const uint8_t *image, size_t len)
{
	size_t limit = len < TERN_MULTIBOOT_SEARCH ? len : TERN_MULTIBOOT_SEARCH;
	for (size_t off = 0; off + 12 <= limit; off += 4) {
		uint32_t magic = le32(image + off);
		if (magic != TERN_MULTIBOOT_HEADER_MAGIC)
			continue;
		uint32_t flags = le32(image + off + 4), sum = le32(image + off + 8);
		if (magic + flags + sum == 0)
			return (long)off;
	}
	return -1;
}

static int add_segment(struct tern_multiboot_image *img, uint32_t addr, uint32_t file_offset,
		       uint32_t file_size, uint32_t mem_size, size_t len, struct tern_error *err)
{
	if (img->segments == TERN_MULTIBOOT_MAX_SEGMENTS)
		return tern_errorf(err, -E2BIG, "kernel has more than %d loadable segments",
				   TERN_MULTIBOOT_MAX_SEGMENTS);
	if (file_size > mem_size)
		return tern_errorf(err, -EINVAL, "kernel segment at 0x%x: file size 0x%x exceeds "
				   "memory size 0x%x", addr, file_size, mem_size);
	if ((uint64_t)file_offset + file_size > len)
		return tern_errorf(err, -EINVAL, "kernel segment at 0x%x reaches past the end of "
				   "the file (offset 0x%x + 0x%x > %zu bytes)",
				   addr, file_offset, file_size, len);
	if ((uint64_t)addr + mem_size > UINT32_MAX)
		return tern_errorf(err, -EINVAL, "kernel segment at 0x%x (0x%x bytes) does not fit "
				   "below 4 GiB", addr, mem_size);
	for (unsigned i = 0; i < img->segments; i++) {
		const struct tern_multiboot_segment *s = &img->segment[i];
		if (mem_size != 0 && s->mem_size != 0 && addr < s->addr + s->mem_size &&
		    s->addr < addr + mem_size)
			return tern_errorf(err, -EINVAL, "kernel segments at 0x%x and 0x%x overlap",
					   s->addr, addr);
	}
	img->segment[img->segments++] = (struct tern_multiboot_segment){
		.addr = addr, .file_offset = file_offset, .file_size = file_size, .mem_size = mem_size,
	};
	if (mem_size != 0) {
		if (addr < img->low)
			img->low = addr;
		if (addr + mem_size > img->high)
			img->high = addr + mem_size;
	}
	return 0;
}

static int parse_aout(const uint8_t *image, size_t len, size_t hdr_off,
		      struct tern_multiboot_image *img, struct tern_error *err)
{
	if (hdr_off + 32 > len)
		return tern_errorf(err, -EINVAL, "multiboot header is cut short (a.out kludge "
				   "fields missing)");
	const uint8_t *h = image + hdr_off;
	uint32_t header_addr = le32(h + 12), load_addr = le32(h + 16);
	uint32_t load_end = le32(h + 20), bss_end = le32(h + 24), entry = le32(h + 28);
	if (load_addr > header_addr || header_addr - load_addr > hdr_off)
		return tern_errorf(err, -EINVAL, "multiboot load_addr 0x%x does not fit "
				   "header_addr 0x%x at file offset %zu", load_addr, header_addr,
				   hdr_off);
	uint32_t file_offset = (uint32_t)(hdr_off - (header_addr - load_addr));
	uint64_t file_size = load_end ? (uint64_t)load_end - load_addr : len - file_offset;
	if (load_end != 0 && load_end < load_addr)
		return tern_errorf(err, -EINVAL, "multiboot load_end_addr 0x%x is below "
				   "load_addr 0x%x", load_end, load_addr);
	uint64_t mem_size = file_size;
	if (bss_end != 0) {
		if (bss_end < load_addr + file_size)
			return tern_errorf(err, -EINVAL, "multiboot bss_end_addr 0x%x is below the "
					   "end of the loaded image", bss_end);
		mem_size = (uint64_t)bss_end - load_addr;
	}
	if (file_size > UINT32_MAX || mem_size > UINT32_MAX)
		return tern_errorf(err, -EINVAL, "multiboot image is too large");
	int rc = add_segment(img, load_addr, file_offset, (uint32_t)file_size, (uint32_t)mem_size,
			     len, err);
	if (rc < 0)
		return rc;
	img->entry = entry;
	return 0;
}

static int parse_elf32(const uint8_t *image, size_t len, struct tern_multiboot_image *img,
		       struct tern_error *err)
{
	if (len < sizeof(Elf32_Ehdr) || memcmp(image, ELFMAG, SELFMAG) != 0)
		return tern_errorf(err, -ENOEXEC, "kernel is neither an ELF file nor a multiboot "
				   "a.out-kludge image");
	if (image[EI_CLASS] == ELFCLASS64)
		return tern_errorf(err, -ENOEXEC, "cannot load an x86-64 ELF kernel; give a 32-bit "
				   "one (wrap 64-bit code with objcopy -O elf32-i386), as QEMU's "
				   "-kernel requires");
	Elf32_Ehdr eh;
	memcpy(&eh, image, sizeof eh);
	if (image[EI_CLASS] != ELFCLASS32 || image[EI_DATA] != ELFDATA2LSB)
		return tern_errorf(err, -ENOEXEC, "kernel is not a little-endian ELF32 file");
	if (eh.e_machine != EM_386)
		return tern_errorf(err, -ENOEXEC, "kernel is an ELF32 file for machine %u, not "
				   "i386", eh.e_machine);
	if (eh.e_phentsize != sizeof(Elf32_Phdr) || eh.e_phnum == 0)
		return tern_errorf(err, -ENOEXEC, "kernel ELF has no usable program headers");
	if ((uint64_t)eh.e_phoff + (uint64_t)eh.e_phnum * sizeof(Elf32_Phdr) > len)
		return tern_errorf(err, -ENOEXEC, "kernel ELF program headers reach past the end "
				   "of the file");
	img->entry = eh.e_entry;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf32_Phdr ph;
		memcpy(&ph, image + eh.e_phoff + (size_t)i * sizeof ph, sizeof ph);
		if (ph.p_type != PT_LOAD)
			continue;
		int rc = add_segment(img, ph.p_paddr, ph.p_offset, ph.p_filesz, ph.p_memsz, len, err);
		if (rc < 0)
			return rc;
		/* The entry is virtual; when a code segment's physical and
		 * virtual addresses differ, translate it as QEMU does. */
		if (ph.p_vaddr != ph.p_paddr && (ph.p_flags & PF_X) && eh.e_entry >= ph.p_vaddr &&
		    eh.e_entry - ph.p_vaddr < ph.p_filesz)
			img->entry = eh.e_entry - ph.p_vaddr + ph.p_paddr;
	}
	if (img->high == 0)
		return tern_errorf(err, -ENOEXEC, "kernel ELF has nothing to load");
	return 0;
}

int tern_multiboot_parse(const uint8_t *image, size_t len, struct tern_multiboot_image *out,
			 struct tern_error *err)
{
	memset(out, 0, sizeof *out);
	out->low = UINT32_MAX;
	if (len > UINT32_MAX)
		return tern_errorf(err, -EFBIG, "kernel image is larger than 4 GiB");
	long hdr = find_header(image, len);
	if (hdr < 0)
		return tern_errorf(err, -ENOEXEC, "no multiboot header in the first %d bytes of the "
				   "kernel (is it a multiboot v1 kernel?)", TERN_MULTIBOOT_SEARCH);
	out->header_flags = le32(image + hdr + 4);
	uint32_t unknown = out->header_flags & 0xffffu & ~MB_FLAGS_REQUIRED_KNOWN;
	if (unknown != 0)
		return tern_errorf(err, -ENOTSUP, "kernel requires multiboot features 0x%x that "
				   "tern does not provide", unknown);
	int rc = (out->header_flags & MB_FLAG_AOUT_KLUDGE)
			 ? parse_aout(image, len, (size_t)hdr, out, err)
			 : parse_elf32(image, len, out, err);
	if (rc < 0)
		return rc;
	int inside = 0;
	for (unsigned i = 0; i < out->segments; i++) {
		const struct tern_multiboot_segment *s = &out->segment[i];
		if (out->entry >= s->addr && out->entry - s->addr < s->mem_size)
			inside = 1;
	}
	if (!inside)
		return tern_errorf(err, -ENOEXEC, "kernel entry point 0x%x is outside every loaded "
				   "segment", out->entry);
	return 0;
}

/* Layout of the information block (offsets into struct multiboot_info). */
enum {
	MBI_FLAGS = 0,
	MBI_MEM_LOWER = 4,
	MBI_MEM_UPPER = 8,
	MBI_CMDLINE_ADDR = 16,
	MBI_MMAP_LENGTH = 44,
	MBI_MMAP_ADDR = 48,
	MBI_LOADER_NAME_ADDR = 64,
	MBI_SIZE = 88,
	MMAP_ENTRY_SIZE = 24, /* size field + addr + len + type */
};

static const char loader_name[] = "tern";

int tern_multiboot_build_info(uint8_t *buf, size_t buf_len, uint32_t buf_addr,
			      const char *cmdline, const struct tern_memory_range *map,
			      unsigned map_entries, struct tern_error *err)
{
	size_t cmd_len = strlen(cmdline) + 1;
	size_t need = MBI_SIZE + (size_t)map_entries * MMAP_ENTRY_SIZE + cmd_len + sizeof loader_name;
	if (need > buf_len || (uint64_t)buf_addr + need > UINT32_MAX)
		return tern_errorf(err, -E2BIG, "multiboot information (%zu bytes, command line of "
				   "%zu) does not fit in %zu bytes", need, cmd_len, buf_len);
	memset(buf, 0, need);
	size_t mmap_off = MBI_SIZE;
	size_t cmd_off = mmap_off + (size_t)map_entries * MMAP_ENTRY_SIZE;
	size_t name_off = cmd_off + cmd_len;

	/* mem_lower/mem_upper: KiB below 640K and contiguous KiB from 1 MiB. */
	uint64_t lower = 0, upper = 0;
	for (unsigned i = 0; i < map_entries; i++) {
		const struct tern_memory_range *r = &map[i];
		uint8_t *e = buf + mmap_off + (size_t)i * MMAP_ENTRY_SIZE;
		put32(e, MMAP_ENTRY_SIZE - 4);
		put64(e + 4, r->addr);
		put64(e + 12, r->len);
		put32(e + 20, r->type);
		if (r->type != TERN_E820_RAM)
			continue;
		if (r->addr == 0)
			lower = (r->len < 0xa0000 ? r->len : 0xa0000) >> 10;
		if (r->addr == 0x100000)
			upper = r->len >> 10;
	}
	put32(buf + MBI_FLAGS, MBI_MEMORY | MBI_CMDLINE | MBI_MMAP | MBI_LOADER_NAME);
	put32(buf + MBI_MEM_LOWER, (uint32_t)lower);
	put32(buf + MBI_MEM_UPPER, upper > UINT32_MAX ? UINT32_MAX : (uint32_t)upper);
	put32(buf + MBI_CMDLINE_ADDR, buf_addr + (uint32_t)cmd_off);
	put32(buf + MBI_MMAP_LENGTH, map_entries * MMAP_ENTRY_SIZE);
	put32(buf + MBI_MMAP_ADDR, buf_addr + (uint32_t)mmap_off);
	put32(buf + MBI_LOADER_NAME_ADDR, buf_addr + (uint32_t)name_off);
	memcpy(buf + cmd_off, cmdline, cmd_len);
	memcpy(buf + name_off, loader_name, sizeof loader_name);
	return (int)need;
}
