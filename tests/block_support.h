/* What the block tests share (tests/block_support.c): an in-memory
 * reference disk and random I/O run against it through a tern_block. */
#ifndef TESTS_BLOCK_SUPPORT_H
#define TESTS_BLOCK_SUPPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "tern/block.h"

/* The bytes a disk must hold.  A discarded sector may read as zeros or as
 * before (maybe_zero) until a read settles which. */
struct block_model {
	uint8_t *data;
	uint8_t *maybe_zero; /* per sector */
	uint64_t size;
};

void block_model_init(struct block_model *m, uint64_t size);
void block_model_free(struct block_model *m);
void block_model_write(struct block_model *m, uint64_t off, const uint8_t *buf, uint64_t len);
void block_model_zero(struct block_model *m, uint64_t off, uint64_t len);
void block_model_discard(struct block_model *m, uint64_t off, uint64_t len);
/* Does buf (read at off) agree with the model?  Settles discarded sectors. */
bool block_model_check(struct block_model *m, uint64_t off, const uint8_t *buf, uint64_t len);

struct block_io_opts {
	int ops;
	bool unaligned; /* iovecs at odd addresses and lengths */
	bool discards;	/* write zeroes and discard too */
	uint64_t max_len;
};
/* Random reads, writes, flushes, zeroes, discards; fails the test on a
 * mismatch, then reads the whole disk back. */
void block_random_io(struct tern_block *b, struct block_model *m, uint64_t seed,
		     const struct block_io_opts *o);
/* Read all of b and compare with the model. */
void block_verify_all(struct tern_block *b, struct block_model *m);
/* Write the model out as a raw file (for cmp against qemu-img convert). */
void block_model_save(struct block_model *m, const char *path);

#endif
