/* Comparing a checked-in description file with the build's; see
 * tern_vmstate_desc_compare in include/tern/vmstate.h. */
#include "tern/vmstate.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct line {
	const char *p;
	size_t len;
};

/* A desc block: its "desc" line and the lines up to the next one. */
struct block {
	const struct line *line;
	size_t n;
	char name[256];
	unsigned long version;
};

struct section {
	char name[256];
	const struct line *meta; /* the lines before its first desc */
	size_t nmeta;
	struct block *block;
	size_t nblocks;
};

struct file {
	struct line *line;
	size_t nlines;
	struct section *section;
	size_t nsections;
};

static void file_free(struct file *f)
{
	for (size_t i = 0; i < f->nsections; i++)
		free(f->section[i].block);
	free(f->section);
	free(f->line);
	memset(f, 0, sizeof *f);
}

/* The line's first words after its indent: "desc NAME version V". */
static int words(const struct line *l, const char *first, char *second, size_t cap,
		 unsigned long *version)
{
	size_t at = 0, n = strlen(first);
	while (at < l->len && l->p[at] == '\t')
		at++;
	if (l->len - at <= n || memcmp(l->p + at, first, n) != 0 || l->p[at + n] != ' ')
		return 0;
	at += n + 1;
	size_t w = 0;
	while (at + w < l->len && l->p[at + w] != ' ')
		w++;
	if (w == 0 || w >= cap)
		return 0;
	memcpy(second, l->p + at, w);
	second[w] = '\0';
	at += w;
	if (version != NULL) {
		*version = 0;
		if (l->len - at > 9 && memcmp(l->p + at, " version ", 9) == 0)
			*version = strtoul(l->p + at + 9, NULL, 10);
	}
	return 1;
}

/* Lines, without comments (#) and blank lines; grouped into sections. */
static int parse(const char *text, struct file *f)
{
	memset(f, 0, sizeof *f);
	size_t cap = 1;
	for (const char *p = text; *p; p++)
		cap += *p == '\n';
	f->line = calloc(cap, sizeof *f->line);
	f->section = calloc(cap, sizeof *f->section);
	if (f->line == NULL || f->section == NULL)
		return -ENOMEM;
	for (const char *p = text; *p;) {
		const char *end = strchr(p, '\n');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		struct line l = { p, len };
		while (l.len > 0 && (l.p[l.len - 1] == '\r' || l.p[l.len - 1] == ' '))
			l.len--;
		p += len + (end != NULL);
		size_t lead = 0;
		while (lead < l.len && (l.p[lead] == '\t' || l.p[lead] == ' '))
			lead++;
		if (lead == l.len || l.p[lead] == '#')
			continue;
		f->line[f->nlines++] = l;
	}
	struct section *s = NULL;
	for (size_t i = 0; i < f->nlines; i++) {
		const struct line *l = &f->line[i];
		char name[256];
		unsigned long version;
		if (words(l, "section", name, sizeof name, NULL) && l->p[0] == 's') {
			s = &f->section[f->nsections++];
			memcpy(s->name, name, sizeof name);
			s->meta = l + 1;
			s->block = calloc(f->nlines - i, sizeof *s->block);
			if (s->block == NULL)
				return -ENOMEM;
		} else if (s == NULL) {
			continue; /* before the first section */
		} else if (words(l, "desc", name, sizeof name, &version)) {
			struct block *b = &s->block[s->nblocks++];
			b->line = l;
			memcpy(b->name, name, sizeof name);
			b->version = version;
			b->n = 1;
		} else if (s->nblocks > 0) {
			s->block[s->nblocks - 1].n++;
		} else {
			s->nmeta++;
		}
	}
	return 0;
}

static const struct section *find_section(const struct file *f, const char *name)
{
	for (size_t i = 0; i < f->nsections; i++)
		if (strcmp(f->section[i].name, name) == 0)
			return &f->section[i];
	return NULL;
}

/* The section's own description is its first; the rest go by name. */
static const struct block *find_block(const struct section *s, size_t index, const char *name)
{
	if (index == 0)
		return s->nblocks > 0 ? &s->block[0] : NULL;
	for (size_t i = 1; i < s->nblocks; i++)
		if (strcmp(s->block[i].name, name) == 0)
			return &s->block[i];
	return NULL;
}

static int same_line(const struct line *a, const struct line *b)
{
	return a->len == b->len && memcmp(a->p, b->p, a->len) == 0;
}

/* The first place two runs of lines differ, or -1 when they do not. */
static long first_difference(const struct line *a, size_t na, const struct line *b, size_t nb)
{
	for (size_t i = 0; i < na || i < nb; i++)
		if (i >= na || i >= nb || !same_line(&a[i], &b[i]))
			return (long)i;
	return -1;
}

/* Line `at` without its indent, or (nothing) past the end; its length. */
static int shown(const struct line *l, size_t n, long at, const char **p)
{
	if ((size_t)at >= n) {
		*p = "(nothing)";
		return (int)strlen(*p);
	}
	size_t lead = 0;
	while (lead < l[at].len && l[at].p[lead] == '\t')
		lead++;
	*p = l[at].p + lead;
	return (int)(l[at].len - lead > 200 ? 200 : l[at].len - lead);
}

static int bump_missing(const struct section *s, const struct block *was, const struct block *now,
			long at, struct tern_error *err)
{
	const char *a, *b;
	int na = shown(was->line, was->n, at, &a), nb = shown(now->line, now->n, at, &b);
	return tern_errorf(err, -EPROTO, "section %s changed without a version bump (from %lu): "
			   "in description %s, '%.*s' is now '%.*s'; a change to the wire form "
			   "needs a new version (and the loader to take the old one), then run "
			   "make vmstate-desc", s->name, was->version, now->name, na, a, nb, b);
}

static int regenerate(const struct file *was, const struct file *now, struct tern_error *err)
{
	const char *a, *b;
	long at = first_difference(was->line, was->nlines, now->line, now->nlines);
	if (at < 0) /* only comments differ */
		return tern_errorf(err, -EPROTO, "update tests/vmstate.desc: run make vmstate-desc "
				   "(its comments differ from the build's)");
	int na = shown(was->line, was->nlines, at, &a), nb = shown(now->line, now->nlines, at, &b);
	return tern_errorf(err, -EPROTO, "update tests/vmstate.desc: run make vmstate-desc (the "
			   "file says '%.*s' where the build says '%.*s')", na, a, nb, b);
}

int tern_vmstate_desc_compare(const char *checked_in, const char *built, struct tern_error *err)
{
	if (strcmp(checked_in, built) == 0)
		return 0;
	struct file was, now;
	int rc = parse(checked_in, &was);
	if (rc == 0)
		rc = parse(built, &now);
	else
		memset(&now, 0, sizeof now);
	if (rc < 0) {
		file_free(&was);
		file_free(&now);
		return tern_errorf(err, rc, "out of memory comparing descriptions");
	}
	for (size_t i = 0; rc == 0 && i < now.nsections; i++) {
		const struct section *s = &now.section[i], *old = find_section(&was, s->name);
		for (size_t j = 0; old != NULL && rc == 0 && j < s->nblocks; j++) {
			const struct block *b = &s->block[j], *o = find_block(old, j, b->name);
			if (o == NULL || o->version != b->version)
				continue;
			long at = first_difference(o->line, o->n, b->line, b->n);
			if (at >= 0)
				rc = bump_missing(s, o, b, at, err);
		}
	}
	if (rc == 0)
		rc = regenerate(&was, &now, err);
	file_free(&was);
	file_free(&now);
	return rc;
}
