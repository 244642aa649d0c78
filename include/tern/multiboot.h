/*
 * Multiboot v1 kernels, loaded the way QEMU's -kernel loads them.
 *
 * The image is untrusted: tern_multiboot_parse() checks every offset,
 * size and address before it describes what to load.  Nothing here touches
 * guest memory; the VMM copies the segments and the information block.
 */
#ifndef TERN_MULTIBOOT_H
#define TERN_MULTIBOOT_H

#include <stddef.h>
#include <stdint.h>

#include "tern/error.h"

#define TERN_MULTIBOOT_HEADER_MAGIC 0x1BADB002u
#define TERN_MULTIBOOT_BOOT_MAGIC 0x2BADB002u
#define TERN_MULTIBOOT_SEARCH 8192
#define TERN_MULTIBOOT_MAX_SEGMENTS 16

/* Bytes [file_offset, file_offset + file_size) of the image go to guest
 * physical `addr`; [addr + file_size, addr + mem_size) is zeroed. */
struct tern_multiboot_segment {
	uint32_t addr;
	uint32_t file_offset;
	uint32_t file_size;
	uint32_t mem_size;
};

struct tern_multiboot_image {
	uint32_t header_flags;
	uint32_t entry;
	uint32_t low, high; /* lowest and one past the highest loaded address */
	unsigned segments;
	struct tern_multiboot_segment segment[TERN_MULTIBOOT_MAX_SEGMENTS];
};

/* Find the multiboot header and describe the load: ELF32 (EM_386, may
 * wrap 64-bit code) or, with header flag 16, the a.out kludge addresses. */
int tern_multiboot_parse(const uint8_t *image, size_t len, struct tern_multiboot_image *out,
			 struct tern_error *err);

/* One entry of the guest's memory map (E820 types: 1 = RAM, 2 = reserved). */
struct tern_memory_range {
	uint64_t addr;
	uint64_t len;
	uint32_t type;
};

#define TERN_E820_RAM 1
#define TERN_E820_RESERVED 2

/*
 * Lay out a multiboot information block, the command line and the memory
 * map into `buf`, which the guest will see at physical `buf_addr`.  Returns
 * the number of bytes used or a negative errno.  The block sets the memory,
 * command line, memory map and boot loader name fields.
 */
int tern_multiboot_build_info(uint8_t *buf, size_t buf_len, uint32_t buf_addr,
			      const char *cmdline, const struct tern_memory_range *map,
			      unsigned map_entries, struct tern_error *err);

#endif
