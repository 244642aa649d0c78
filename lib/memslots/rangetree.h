/*
 * A B+ tree of ranges [start, end), ordered by (start, tie), each carrying
 * a pointer.  Every internal node keeps, per child, the smallest key below
 * it and the largest end below it, so that:
 *   - the entry with the greatest start <= x is found in O(log n) (the
 *     guest-frame tree, whose ranges never overlap);
 *   - every entry containing x is found in O(log n + k) (the host-address
 *     tree, whose ranges may overlap when memory is aliased).
 * Leaves are chained in key order for iteration.  Not thread-safe: the
 * memslot map keeps two trees per set and writes only the one no reader
 * is using.
 */
#ifndef TERN_RANGETREE_H
#define TERN_RANGETREE_H

#include <stddef.h>
#include <stdint.h>

/* 32 keys: three levels cover 32,768 slots, and a node's starts fill four
 * cache lines that one search walks in order. */
#define RANGETREE_FANOUT 32

struct rt_node {
	uint32_t count;
	uint32_t leaf;
	struct rt_node *next; /* leaves: the next leaf in key order */
	uint64_t start[RANGETREE_FANOUT]; /* entry starts, or each child's smallest */
	uint64_t end[RANGETREE_FANOUT];   /* entry ends, or each child's largest end */
	uint32_t tie[RANGETREE_FANOUT];
	void *ptr[RANGETREE_FANOUT]; /* values, or children */
};

struct rangetree {
	struct rt_node *root;
	size_t size;
};

struct rt_entry {
	uint64_t start, end;
	uint32_t tie;
	void *value;
};

struct rt_iter {
	const struct rt_node *leaf;
	unsigned index;
};

void rangetree_init(struct rangetree *t);
void rangetree_free(struct rangetree *t);

/* 0, -EEXIST when (start, tie) is present, -ENOMEM (the tree is unchanged). */
int rangetree_insert(struct rangetree *t, uint64_t start, uint32_t tie, uint64_t end,
		     void *value);
/* The removed entry's value, or NULL when (start, tie) is absent. */
void *rangetree_remove(struct rangetree *t, uint64_t start, uint32_t tie);
/* Point (start, tie) at a new value; -ENOENT when absent. */
int rangetree_replace(struct rangetree *t, uint64_t start, uint32_t tie, void *value);

/* The entry with the greatest (start, tie) <= (start, tie); 0 if none. */
int rangetree_floor(const struct rangetree *t, uint64_t start, uint32_t tie, struct rt_entry *out);

/* For trees of disjoint ranges: the value whose range holds x, or NULL.
 * Each node is scanned whole rather than bisected: the loads of a scan
 * run in parallel, a bisection's wait on one another, and a scan has no
 * branch to mispredict.  Versions per
 * instruction set; rangetree_find_best() picks this CPU's best. */
typedef void *rangetree_find_fn(const struct rangetree *t, uint64_t x);
rangetree_find_fn rangetree_find_portable, rangetree_find_avx2, rangetree_find_avx512;
rangetree_find_fn *rangetree_find_best(void);

/* Every entry whose range holds x: the first `max` go to out[] (in key
 * order); returns how many there are in all. */
size_t rangetree_stab(const struct rangetree *t, uint64_t x, void **out, size_t max);

/* Iteration in key order; NULL at the end. */
void *rangetree_first(const struct rangetree *t, struct rt_iter *it);
void *rangetree_next(struct rt_iter *it);

/* Check every invariant (order, separators, ends, fill, chain, size);
 * 0 or -EUCLEAN.  For tests. */
int rangetree_check(const struct rangetree *t);

#endif
