/* B+ tree of ranges with per-child smallest key and largest end; see rangetree.h. */
#include "rangetree.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define FANOUT RANGETREE_FANOUT
/* A node other than the root keeps at least LOW entries; a full node splits
 * into two of FANOUT / 2, so a node is never both just split and about to
 * merge. */
#define LOW (FANOUT / 4)

static bool key_le(uint64_t a_start, uint32_t a_tie, uint64_t b_start, uint32_t b_tie)
{
	return a_start < b_start || (a_start == b_start && a_tie <= b_tie);
}

/* How many of n's keys are <= (start, tie): branch-free binary search. */
static unsigned count_le(const struct rt_node *n, uint64_t start, uint32_t tie)
{
	unsigned lo = 0, len = n->count;
	while (len > 0) {
		unsigned half = len / 2;
		bool le = key_le(n->start[lo + half], n->tie[lo + half], start, tie);
		lo = le ? lo + half + 1 : lo;
		len = le ? len - half - 1 : half;
	}
	return lo;
}

static uint64_t max_end(const struct rt_node *n)
{
	uint64_t m = 0;
	for (unsigned i = 0; i < n->count; i++)
		if (n->end[i] > m)
			m = n->end[i];
	return m;
}

/* Bring parent p's key and end for child i up to date. */
static void refresh(struct rt_node *p, unsigned i)
{
	const struct rt_node *c = p->ptr[i];
	p->start[i] = c->start[0];
	p->tie[i] = c->tie[0];
	p->end[i] = max_end(c);
}

static void move_entries(struct rt_node *dst, unsigned to, struct rt_node *src, unsigned from,
			 unsigned n)
{
	memmove(&dst->start[to], &src->start[from], n * sizeof dst->start[0]);
	memmove(&dst->end[to], &src->end[from], n * sizeof dst->end[0]);
	memmove(&dst->tie[to], &src->tie[from], n * sizeof dst->tie[0]);
	memmove(&dst->ptr[to], &src->ptr[from], n * sizeof dst->ptr[0]);
}

static void put_entry(struct rt_node *n, unsigned i, uint64_t start, uint32_t tie, uint64_t end,
		      void *ptr)
{
	move_entries(n, i + 1, n, i, n->count - i);
	n->start[i] = start;
	n->tie[i] = tie;
	n->end[i] = end;
	n->ptr[i] = ptr;
	n->count++;
}

static void drop_entry(struct rt_node *n, unsigned i)
{
	move_entries(n, i, n, i + 1, n->count - i - 1);
	n->count--;
}

static struct rt_node *node_new(bool leaf)
{
	struct rt_node *n = calloc(1, sizeof *n);
	if (n)
		n->leaf = leaf;
	return n;
}

void rangetree_init(struct rangetree *t)
{
	t->root = NULL;
	t->size = 0;
}

static void free_node(struct rt_node *n)
{
	if (!n->leaf)
		for (unsigned i = 0; i < n->count; i++)
			free_node(n->ptr[i]);
	free(n);
}

void rangetree_free(struct rangetree *t)
{
	if (t->root)
		free_node(t->root);
	rangetree_init(t);
}

/* Split p's full child i; -ENOMEM leaves p as it was.  Halves, except
 * when keys arrive in ascending order (appending): then the left keeps
 * all but LOW, so that ascending inserts leave nodes nearly full. */
static int split_child(struct rt_node *p, unsigned i, bool appending)
{
	struct rt_node *c = p->ptr[i];
	struct rt_node *r = node_new(c->leaf);
	if (r == NULL)
		return -ENOMEM;
	unsigned keep = appending ? c->count - LOW : c->count / 2;
	move_entries(r, 0, c, keep, c->count - keep);
	r->count = c->count - keep;
	c->count = keep;
	if (c->leaf) {
		r->next = c->next;
		c->next = r;
	}
	put_entry(p, i + 1, r->start[0], r->tie[0], max_end(r), r);
	p->end[i] = max_end(c);
	return 0;
}

/* Whether (start, tie) goes after every key below n. */
static bool rightmost(const struct rt_node *n, uint64_t start, uint32_t tie)
{
	while (!n->leaf)
		n = n->ptr[n->count - 1];
	return !key_le(start, tie, n->start[n->count - 1], n->tie[n->count - 1]);
}

static int insert_below(struct rt_node *n, uint64_t start, uint32_t tie, uint64_t end, void *value)
{
	unsigned below = count_le(n, start, tie);
	if (n->leaf) {
		if (below > 0 && n->start[below - 1] == start && n->tie[below - 1] == tie)
			return -EEXIST;
		put_entry(n, below, start, tie, end, value);
		return 0;
	}
	unsigned i = below > 0 ? below - 1 : 0;
	if (((struct rt_node *)n->ptr[i])->count == FANOUT) {
		int rc = split_child(n, i, below == n->count && rightmost(n->ptr[i], start, tie));
		if (rc < 0)
			return rc;
		if (key_le(n->start[i + 1], n->tie[i + 1], start, tie))
			i++;
	}
	int rc = insert_below(n->ptr[i], start, tie, end, value);
	if (rc == 0) {
		/* Only the child's first key and largest end can have changed. */
		const struct rt_node *c = n->ptr[i];
		n->start[i] = c->start[0];
		n->tie[i] = c->tie[0];
		if (end > n->end[i])
			n->end[i] = end;
	}
	return rc;
}

int rangetree_insert(struct rangetree *t, uint64_t start, uint32_t tie, uint64_t end, void *value)
{
	if (t->root == NULL) {
		t->root = node_new(true);
		if (t->root == NULL)
			return -ENOMEM;
	}
	if (t->root->count == FANOUT) {
		struct rt_node *top = node_new(false);
		if (top == NULL)
			return -ENOMEM;
		top->count = 1;
		top->ptr[0] = t->root;
		refresh(top, 0);
		if (split_child(top, 0, rightmost(t->root, start, tie)) < 0) {
			free(top);
			return -ENOMEM;
		}
		t->root = top;
	}
	int rc = insert_below(t->root, start, tie, end, value);
	if (rc == 0)
		t->size++;
	return rc;
}

/* Make p's child i hold more than LOW entries, borrowing from a sibling or
 * merging with one; returns the index the wanted subtree now has. */
static unsigned fill_child(struct rt_node *p, unsigned i)
{
	struct rt_node *c = p->ptr[i];
	struct rt_node *left = i > 0 ? p->ptr[i - 1] : NULL;
	struct rt_node *right = i + 1 < p->count ? p->ptr[i + 1] : NULL;
	/* Borrow half the difference, not one entry: deleting in order would
	 * otherwise shift a whole sibling on every delete. */
	if (left && left->count > LOW) {
		unsigned k = (left->count - c->count + 1) / 2;
		move_entries(c, k, c, 0, c->count);
		move_entries(c, 0, left, left->count - k, k);
		c->count += k;
		left->count -= k;
		refresh(p, i - 1);
		refresh(p, i);
		return i;
	}
	if (right && right->count > LOW) {
		unsigned k = (right->count - c->count + 1) / 2;
		move_entries(c, c->count, right, 0, k);
		c->count += k;
		move_entries(right, 0, right, k, right->count - k);
		right->count -= k;
		refresh(p, i);
		refresh(p, i + 1);
		return i;
	}
	/* Both neighbours are at LOW: merge c with one (2 * LOW <= FANOUT). */
	unsigned into = left ? i - 1 : i;
	struct rt_node *a = p->ptr[into], *b = p->ptr[into + 1];
	move_entries(a, a->count, b, 0, b->count);
	a->count += b->count;
	if (a->leaf)
		a->next = b->next;
	free(b);
	drop_entry(p, into + 1);
	refresh(p, into);
	return into;
}

/* Remove (start, tie) below n; its value (NULL: absent), and its end in
 * *end, so that parents rescan for their largest end only when it was. */
static void *remove_below(struct rt_node *n, uint64_t start, uint32_t tie, uint64_t *end)
{
	unsigned below = count_le(n, start, tie);
	if (below == 0)
		return NULL;
	if (n->leaf) {
		if (n->start[below - 1] != start || n->tie[below - 1] != tie)
			return NULL;
		void *value = n->ptr[below - 1];
		*end = n->end[below - 1];
		drop_entry(n, below - 1);
		return value;
	}
	unsigned i = below - 1;
	if (((struct rt_node *)n->ptr[i])->count <= LOW)
		i = fill_child(n, i);
	void *value = remove_below(n->ptr[i], start, tie, end);
	const struct rt_node *c = n->ptr[i];
	if (value && c->count > 0) {
		n->start[i] = c->start[0];
		n->tie[i] = c->tie[0];
		if (*end >= n->end[i])
			n->end[i] = max_end(c);
	}
	return value;
}

void *rangetree_remove(struct rangetree *t, uint64_t start, uint32_t tie)
{
	if (t->root == NULL)
		return NULL;
	uint64_t end;
	void *value = remove_below(t->root, start, tie, &end);
	if (value)
		t->size--;
	/* Merges on the way down (kept even on a miss: the tree stays valid)
	 * may leave a root with one child, or an empty leaf. */
	struct rt_node *r = t->root;
	if (r->count == 0) {
		free(r);
		t->root = NULL;
	} else if (!r->leaf && r->count == 1) {
		t->root = r->ptr[0];
		free(r);
	}
	return value;
}

/* The leaf slot holding exactly (start, tie), or NULL. */
static void **locate(const struct rangetree *t, uint64_t start, uint32_t tie)
{
	struct rt_node *n = t->root;
	while (n) {
		unsigned below = count_le(n, start, tie);
		if (below == 0)
			return NULL;
		if (n->leaf)
			return n->start[below - 1] == start && n->tie[below - 1] == tie
				       ? &n->ptr[below - 1]
				       : NULL;
		n = n->ptr[below - 1];
	}
	return NULL;
}

int rangetree_replace(struct rangetree *t, uint64_t start, uint32_t tie, void *value)
{
	void **slot = locate(t, start, tie);
	if (slot == NULL)
		return -ENOENT;
	*slot = value;
	return 0;
}

int rangetree_floor(const struct rangetree *t, uint64_t start, uint32_t tie, struct rt_entry *out)
{
	const struct rt_node *n = t->root;
	while (n) {
		unsigned below = count_le(n, start, tie);
		if (below == 0)
			return 0; /* separators are exact: nothing smaller below */
		if (n->leaf) {
			*out = (struct rt_entry){ n->start[below - 1], n->end[below - 1],
						  n->tie[below - 1], n->ptr[below - 1] };
			return 1;
		}
		n = n->ptr[below - 1];
	}
	return 0;
}

static void stab_below(const struct rt_node *n, uint64_t x, void **out, size_t max, size_t *found)
{
	for (unsigned i = 0; i < n->count && n->start[i] <= x; i++) {
		if (n->end[i] <= x)
			continue;
		if (n->leaf) {
			if (*found < max)
				out[*found] = n->ptr[i];
			(*found)++;
		} else {
			stab_below(n->ptr[i], x, out, max, found);
		}
	}
}

size_t rangetree_stab(const struct rangetree *t, uint64_t x, void **out, size_t max)
{
	size_t found = 0;
	if (t->root)
		stab_below(t->root, x, out, max, &found);
	return found;
}

void *rangetree_first(const struct rangetree *t, struct rt_iter *it)
{
	const struct rt_node *n = t->root;
	while (n && !n->leaf)
		n = n->ptr[0];
	it->leaf = n;
	it->index = 0;
	return n && n->count ? n->ptr[0] : NULL;
}

void *rangetree_next(struct rt_iter *it)
{
	if (it->leaf == NULL)
		return NULL;
	if (++it->index >= it->leaf->count) {
		it->leaf = it->leaf->next;
		it->index = 0;
	}
	return it->leaf ? it->leaf->ptr[it->index] : NULL;
}

/* Check the subtree at n; counts its entries and remembers the leaves in
 * order (to check the chain).  depth: leaves must all sit at one depth. */
static int check_node(const struct rt_node *n, bool is_root, unsigned depth, int *leaf_depth,
		      size_t *entries, const struct rt_node **prev_leaf)
{
	if (n->count == 0 || n->count > FANOUT || (!is_root && n->count < LOW))
		return -EUCLEAN;
	for (unsigned i = 1; i < n->count; i++)
		if (key_le(n->start[i], n->tie[i], n->start[i - 1], n->tie[i - 1]))
			return -EUCLEAN;
	if (n->leaf) {
		if (*leaf_depth < 0)
			*leaf_depth = (int)depth;
		if (*leaf_depth != (int)depth)
			return -EUCLEAN;
		if (*prev_leaf && (*prev_leaf)->next != n)
			return -EUCLEAN;
		*prev_leaf = n;
		*entries += n->count;
		for (unsigned i = 0; i < n->count; i++)
			if (n->end[i] <= n->start[i])
				return -EUCLEAN;
		return 0;
	}
	for (unsigned i = 0; i < n->count; i++) {
		const struct rt_node *c = n->ptr[i];
		if (c->count == 0 || c->start[0] != n->start[i] || c->tie[0] != n->tie[i] ||
		    max_end(c) != n->end[i])
			return -EUCLEAN;
		int rc = check_node(c, false, depth + 1, leaf_depth, entries, prev_leaf);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int rangetree_check(const struct rangetree *t)
{
	if (t->root == NULL)
		return t->size == 0 ? 0 : -EUCLEAN;
	int leaf_depth = -1;
	size_t entries = 0;
	const struct rt_node *prev = NULL;
	int rc = check_node(t->root, true, 0, &leaf_depth, &entries, &prev);
	if (rc < 0)
		return rc;
	if (prev->next != NULL || entries != t->size)
		return -EUCLEAN;
	return 0;
}
