/*
 * virtio-blk over virtio-pci driven as a guest driver would, without a
 * guest: PCI enumeration through ports 0xcf8/0xcfc, the vendor
 * capabilities, BAR programming, reset and feature negotiation, a split
 * ring in malloc'd "guest RAM", kicks through the notify register, and
 * the results checked against the image file (raw, and qcow2 made by
 * qemu-img when it is installed).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../harness/env.h"
#include "devices/devices.h"
#include "devices/virtio_blk.h"

#define RAM (1u << 20)
#define DISK (1u << 20)
#define QSZ 16u
#define DESC 0x1000u
#define AVAIL 0x2000u
#define USED 0x3000u
#define BUF 0x10000u
#define BAR_GPA 0xd0000000ULL

struct t {
	struct bus_space pio, mmio;
	struct pci_host pci;
	uint8_t *ram;
	struct tern_guest_range range;
	struct tern_guest_mem mem;
	char dir[64], path[96];
	struct tern_block *blk;
	struct virtio_blk vb;
	unsigned slot;
	unsigned common, notify, isr, device; /* offsets in the BAR */
	uint16_t avail_idx, used_seen, next_desc;
	int raised[VIRTIO_PCI_MAX_VECTORS + 1];
};

static void on_raise(void *opaque, unsigned vector, uint64_t addr, uint32_t data)
{
	(void)addr, (void)data;
	struct t *t = opaque;
	__atomic_add_fetch(&t->raised[vector < VIRTIO_PCI_MAX_VECTORS ? vector : VIRTIO_PCI_MAX_VECTORS],
			   1, __ATOMIC_SEQ_CST);
}

static uint32_t cfg_read(struct t *t, unsigned reg, unsigned size)
{
	uint64_t v;
	bus_write(&t->pio, PCI_CONFIG_ADDRESS_PORT, 4, PCI_CONFIG_ENABLE | t->slot << 11 | (reg & 0xfc));
	bus_read(&t->pio, PCI_CONFIG_DATA_PORT + (reg & 3), size, &v);
	return (uint32_t)v;
}

static void cfg_write(struct t *t, unsigned reg, unsigned size, uint32_t v)
{
	bus_write(&t->pio, PCI_CONFIG_ADDRESS_PORT, 4, PCI_CONFIG_ENABLE | t->slot << 11 | (reg & 0xfc));
	bus_write(&t->pio, PCI_CONFIG_DATA_PORT + (reg & 3), size, v);
}

static uint64_t rd(struct t *t, unsigned off, unsigned size)
{
	uint64_t v = 0;
	bus_read(&t->mmio, BAR_GPA + off, size, &v);
	return v;
}

static void wr(struct t *t, unsigned off, unsigned size, uint64_t v)
{
	bus_write(&t->mmio, BAR_GPA + off, size, v);
}

/* Set: the next machine opens this image (a destination). */
static char reuse_dir[64], reuse_path[96];

static int make_machine(struct t *t, const char *format, bool readonly)
{
	memset(t, 0, sizeof *t);
	snprintf(t->dir, sizeof t->dir, "/tmp/tern-vblk-XXXXXX");
	if (reuse_path[0] != '\0') {
		snprintf(t->dir, sizeof t->dir, "%s", reuse_dir);
		snprintf(t->path, sizeof t->path, "%s", reuse_path);
	} else if (mkdtemp(t->dir) == NULL) {
		return -1;
	} else {
		snprintf(t->path, sizeof t->path, "%s/disk.%s", t->dir, format);
	}
	if (reuse_path[0] != '\0') {
	} else if (strcmp(format, "qcow2") == 0) {
		char cmd[256];
		snprintf(cmd, sizeof cmd, "qemu-img create -q -f qcow2 %s %u", t->path, DISK);
		if (system(cmd) != 0)
			return -1;
	} else {
		int fd = open(t->path, O_RDWR | O_CREAT, 0600);
		if (fd < 0 || ftruncate(fd, DISK) < 0)
			return -1;
		close(fd);
	}
	struct tern_error err = {0};
	struct tern_block_opts bo = {
		.path = t->path,
		.writable = !readonly,
		.format = strcmp(format, "qcow2") == 0 ? TERN_BLOCK_FORMAT_QCOW2 : TERN_BLOCK_FORMAT_RAW,
	};
	if (tern_block_open(&bo, &t->blk, &err) < 0) {
		print_message("open: %s\n", err.msg);
		return -1;
	}
	t->ram = calloc(1, RAM);
	t->range = (struct tern_guest_range){.gpa = 0, .len = RAM, .host = t->ram};
	t->mem = (struct tern_guest_mem){.ranges = &t->range, .count = 1};
	if (bus_init(&t->pio, "port I/O", 0x10000) < 0 || bus_init(&t->mmio, "MMIO", 0) < 0 ||
	    pci_host_init(&t->pci, &t->pio, &t->mmio, NULL) < 0)
		return -1;
	struct virtio_blk_opts o = {.blk = t->blk, .id = "tern-disk-0", .readonly = readonly, .mem = &t->mem};
	if (virtio_blk_init(&t->vb, &o, &err) < 0) {
		print_message("virtio_blk_init: %s\n", err.msg);
		return -1;
	}
	t->vb.vp.raise = on_raise;
	t->vb.vp.raise_opaque = t;
	if (pci_register(&t->pci, &t->vb.vp.pci, -1, &err) < 0)
		return -1;
	return 0;
}

static void free_machine(struct t *t)
{
	virtio_blk_destroy(&t->vb);
	pci_host_destroy(&t->pci);
	bus_destroy(&t->mmio);
	bus_destroy(&t->pio);
	tern_block_close(t->blk, NULL);
	free(t->ram);
	if (reuse_path[0] == '\0') {
		unlink(t->path);
		rmdir(t->dir);
	}
}

/* Find the function, its capabilities, and place BAR 4. */
static void enumerate(struct t *t)
{
	for (t->slot = 0; t->slot < 32; t->slot++)
		if (cfg_read(t, PCI_REG_VENDOR, 2) == VIRTIO_PCI_VENDOR)
			break;
	assert_true(t->slot < 32);
	assert_int_equal(cfg_read(t, PCI_REG_DEVICE, 2), 0x1042);
	assert_int_equal(cfg_read(t, PCI_REG_REVISION, 1), 1);
	assert_int_equal(cfg_read(t, PCI_REG_SUBSYS_VENDOR, 2), 0x1af4);
	assert_true(cfg_read(t, PCI_REG_SUBSYS, 2) >= 0x40);
	assert_true(cfg_read(t, PCI_REG_STATUS, 2) & PCI_STATUS_CAP_LIST);
	unsigned found = 0;
	for (unsigned c = cfg_read(t, PCI_REG_CAP_PTR, 1); c != 0; c = cfg_read(t, c + 1, 1)) {
		if (cfg_read(t, c, 1) == PCI_CAP_ID_MSIX) {
			/* enable MSI-X: table in BAR 4 */
			assert_int_equal(cfg_read(t, c + 4, 4) & 7, VIRTIO_PCI_BAR);
			cfg_write(t, c + 2, 2, 0x8000);
			found |= 1u << 7;
			continue;
		}
		if (cfg_read(t, c, 1) != PCI_CAP_ID_VENDOR)
			continue;
		unsigned type = cfg_read(t, c + 3, 1), off = cfg_read(t, c + 8, 4);
		assert_int_equal(cfg_read(t, c + 4, 1), VIRTIO_PCI_BAR);
		found |= 1u << type;
		if (type == VIRTIO_PCI_CAP_COMMON)
			t->common = off;
		else if (type == VIRTIO_PCI_CAP_NOTIFY) {
			t->notify = off;
			assert_int_equal(cfg_read(t, c + 16, 4), 4);
		} else if (type == VIRTIO_PCI_CAP_ISR)
			t->isr = off;
		else if (type == VIRTIO_PCI_CAP_DEVICE)
			t->device = off;
	}
	assert_int_equal(found, 0x9e);
	/* Size BAR 4 (64-bit), then place it. */
	cfg_write(t, PCI_REG_BAR0 + 16, 4, 0xffffffff);
	uint32_t lo = cfg_read(t, PCI_REG_BAR0 + 16, 4);
	assert_int_equal(~(lo & ~0xfu) + 1, VIRTIO_PCI_BAR_SIZE);
	assert_int_equal(lo & 0x6, PCI_BAR_64);
	cfg_write(t, PCI_REG_BAR0 + 16, 4, (uint32_t)BAR_GPA);
	cfg_write(t, PCI_REG_BAR0 + 20, 4, 0);
	cfg_write(t, PCI_REG_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
}

static uint64_t device_features(struct t *t)
{
	wr(t, t->common + 0, 4, 0);
	uint64_t f = rd(t, t->common + 4, 4);
	wr(t, t->common + 0, 4, 1);
	return f | rd(t, t->common + 4, 4) << 32;
}

/* Reset, negotiate `want`; returns whether FEATURES_OK stuck. */
static bool negotiate(struct t *t, uint64_t want)
{
	wr(t, t->common + 0x14, 1, 0);
	assert_int_equal(rd(t, t->common + 0x14, 1), 0);
	wr(t, t->common + 0x14, 1, VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER);
	wr(t, t->common + 8, 4, 0);
	wr(t, t->common + 0xc, 4, (uint32_t)want);
	wr(t, t->common + 8, 4, 1);
	wr(t, t->common + 0xc, 4, (uint32_t)(want >> 32));
	wr(t, t->common + 0x14, 1, VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER | VIRTIO_S_FEATURES_OK);
	return rd(t, t->common + 0x14, 1) & VIRTIO_S_FEATURES_OK;
}

static void setup_queue(struct t *t, uint64_t features)
{
	memset(t->ram, 0, RAM);
	t->avail_idx = t->used_seen = t->next_desc = 0;
	assert_true(negotiate(t, features));
	wr(t, t->common + 0x10, 2, 1); /* config changes: vector 1 */
	wr(t, t->common + 0x16, 2, 0);
	assert_int_equal(rd(t, t->common + 0x18, 2), VBLK_QUEUE_SIZE);
	wr(t, t->common + 0x18, 2, QSZ);
	wr(t, t->common + 0x1a, 2, 0);
	wr(t, t->common + 0x20, 8, DESC);
	wr(t, t->common + 0x28, 8, AVAIL);
	wr(t, t->common + 0x30, 8, USED);
	wr(t, t->common + 0x1c, 2, 1);
	assert_int_equal(rd(t, t->common + 0x1c, 2), 1);
	/* Unmask vectors 0 and 1. */
	wr(t, VIRTIO_PCI_MSIX_TABLE_OFF + 12, 4, 0);
	wr(t, VIRTIO_PCI_MSIX_TABLE_OFF + 16 + 12, 4, 0);
	wr(t, t->common + 0x14, 1, VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER | VIRTIO_S_FEATURES_OK |
					   VIRTIO_S_DRIVER_OK);
}

static void put_desc(struct t *t, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	uint8_t *d = t->ram + DESC + 16 * i;
	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
}

static void post(struct t *t, uint16_t head)
{
	uint16_t *avail = (uint16_t *)(t->ram + AVAIL);
	avail[2 + t->avail_idx % QSZ] = head;
	__atomic_store_n(&avail[1], ++t->avail_idx, __ATOMIC_RELEASE);
	wr(t, t->notify + 0, 2, 0);
}

static bool wait_used(struct t *t)
{
	uint16_t *used = (uint16_t *)(t->ram + USED);
	for (int i = 0; i < 5000; i++) {
		if (__atomic_load_n(&used[1], __ATOMIC_ACQUIRE) != t->used_seen) {
			t->used_seen++;
			return true;
		}
		usleep(1000);
	}
	return false;
}

/* One request: header, data of len bytes at BUF (device-writable when
 * `in`), status; returns the status byte. */
static int request(struct t *t, uint32_t type, uint64_t sector, uint32_t len, bool in)
{
	uint8_t *hdr = t->ram + BUF - 64;
	memset(hdr, 0, 16);
	memcpy(hdr, &type, 4);
	memcpy(hdr + 8, &sector, 8);
	uint8_t *status = t->ram + BUF - 16;
	*status = 0xee;
	uint16_t h = (uint16_t)(t->next_desc % QSZ);
	t->next_desc = (uint16_t)(t->next_desc + 3);
	uint16_t d1 = (uint16_t)((h + 1) % QSZ), d2 = (uint16_t)((h + 2) % QSZ);
	if (len > 0) {
		put_desc(t, h, BUF - 64, 16, TERN_VRING_DESC_F_NEXT, d1);
		put_desc(t, d1, BUF, len, TERN_VRING_DESC_F_NEXT | (in ? TERN_VRING_DESC_F_WRITE : 0), d2);
		put_desc(t, d2, BUF - 16, 1, TERN_VRING_DESC_F_WRITE, 0);
	} else {
		put_desc(t, h, BUF - 64, 16, TERN_VRING_DESC_F_NEXT, d1);
		put_desc(t, d1, BUF - 16, 1, TERN_VRING_DESC_F_WRITE, 0);
		t->next_desc--;
	}
	post(t, h);
	if (!wait_used(t))
		return -1;
	return *status;
}

static uint64_t all_features(struct t *t)
{
	return device_features(t) & ~TERN_VIRTIO_BIT(TERN_VIRTIO_F_EVENT_IDX);
}

static void pread_image(struct t *t, uint64_t off, void *buf, size_t len)
{
	int fd = open(t->path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static void negotiation(void **state)
{
	(void)state;
	struct t t;
	assert_int_equal(make_machine(&t, "raw", false), 0);
	enumerate(&t);
	uint64_t f = device_features(&t);
	assert_true(f & TERN_VIRTIO_BIT(TERN_VIRTIO_F_VERSION_1));
	assert_true(f & TERN_VIRTIO_BIT(VIRTIO_BLK_F_FLUSH));
	assert_true(f & TERN_VIRTIO_BIT(VIRTIO_BLK_F_DISCARD));
	assert_false(f & TERN_VIRTIO_BIT(VIRTIO_BLK_F_RO));
	/* A bit the device lacks, or no VERSION_1: FEATURES_OK is refused. */
	assert_false(negotiate(&t, f | TERN_VIRTIO_BIT(50)));
	assert_false(negotiate(&t, f & ~TERN_VIRTIO_BIT(TERN_VIRTIO_F_VERSION_1)));
	assert_true(negotiate(&t, TERN_VIRTIO_BIT(TERN_VIRTIO_F_VERSION_1)));
	/* Device config: capacity, seg_max, blk_size. */
	assert_int_equal(rd(&t, t.device + 0, 8), DISK / 512);
	assert_int_equal(rd(&t, t.device + 12, 4), VBLK_QUEUE_SIZE - 2);
	assert_int_equal(rd(&t, t.device + 20, 4), 512);
	assert_int_equal(rd(&t, t.common + 0x12, 2), 1);
	free_machine(&t);
}

static void io(struct t *t, bool event_idx)
{
	enumerate(t);
	setup_queue(t, event_idx ? device_features(t) : all_features(t));
	uint8_t *buf = t->ram + BUF, img[4096];
	for (unsigned i = 0; i < 4096; i++)
		buf[i] = (uint8_t)(i * 7 + 1);
	assert_int_equal(request(t, VIRTIO_BLK_T_OUT, 8, 4096, false), VIRTIO_BLK_S_OK);
	assert_int_equal(request(t, VIRTIO_BLK_T_FLUSH, 0, 0, false), VIRTIO_BLK_S_OK);
	memset(buf, 0, 4096);
	assert_int_equal(request(t, VIRTIO_BLK_T_IN, 8, 4096, true), VIRTIO_BLK_S_OK);
	for (unsigned i = 0; i < 4096; i++)
		assert_int_equal(buf[i], (uint8_t)(i * 7 + 1));
	assert_true(t->raised[0] > 0);
	/* GET_ID */
	memset(buf, 0xaa, 32);
	assert_int_equal(request(t, VIRTIO_BLK_T_GET_ID, 0, 20, true), VIRTIO_BLK_S_OK);
	assert_memory_equal(buf, "tern-disk-0\0\0\0\0\0\0\0\0\0", 20);
	/* WRITE_ZEROES over the second sector written. */
	uint64_t seg[2] = {9, 1};
	memcpy(buf, seg, 16);
	assert_int_equal(request(t, VIRTIO_BLK_T_WRITE_ZEROES, 0, 16, false), VIRTIO_BLK_S_OK);
	assert_int_equal(request(t, VIRTIO_BLK_T_IN, 8, 4096, true), VIRTIO_BLK_S_OK);
	for (unsigned i = 0; i < 512; i++)
		assert_int_equal(buf[512 + i], 0);
	assert_int_equal(buf[0], 1);
	memcpy(img, buf, 4096);
	if (strstr(t->path, ".raw") != NULL) {
		uint8_t file[4096];
		pread_image(t, 8 * 512, file, 4096);
		assert_memory_equal(file, img, 4096);
	}
	/* DISCARD: accepted; a flag it does not know is unsupported. */
	uint64_t dseg[2] = {16, 8};
	memcpy(buf, dseg, 16);
	assert_int_equal(request(t, VIRTIO_BLK_T_DISCARD, 0, 16, false), VIRTIO_BLK_S_OK);
	uint64_t bad[2] = {16, 8 | (2ULL << 32)};
	memcpy(buf, bad, 16);
	assert_int_equal(request(t, VIRTIO_BLK_T_DISCARD, 0, 16, false), VIRTIO_BLK_S_UNSUPP);
	/* Bad requests. */
	assert_int_equal(request(t, 99, 0, 0, false), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(request(t, VIRTIO_BLK_T_IN, DISK / 512, 512, true), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(t, VIRTIO_BLK_T_IN, DISK / 512 - 1, 1024, true), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(t, VIRTIO_BLK_T_IN, UINT64_MAX / 4, 512, true), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(t, VIRTIO_BLK_T_OUT, 0, 100, false), VIRTIO_BLK_S_IOERR);
	free_machine(t);
}

static void raw_io(void **state)
{
	(void)state;
	struct t t;
	assert_int_equal(make_machine(&t, "raw", false), 0);
	io(&t, false);
}

static void qcow2_io(void **state)
{
	(void)state;
	if (!harness_have("qemu-img")) {
		print_message("    skipped: needs qemu-img\n");
		skip();
	}
	struct t t;
	assert_int_equal(make_machine(&t, "qcow2", false), 0);
	io(&t, true); /* with EVENT_IDX */
}

static void readonly(void **state)
{
	(void)state;
	struct t t;
	assert_int_equal(make_machine(&t, "raw", true), 0);
	enumerate(&t);
	uint64_t f = device_features(&t);
	assert_true(f & TERN_VIRTIO_BIT(VIRTIO_BLK_F_RO));
	assert_false(f & TERN_VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES));
	setup_queue(&t, all_features(&t));
	assert_int_equal(request(&t, VIRTIO_BLK_T_OUT, 0, 512, false), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(&t, VIRTIO_BLK_T_IN, 0, 512, true), VIRTIO_BLK_S_OK);
	free_machine(&t);
}

static void hostile_ring(void **state)
{
	(void)state;
	struct t t;
	assert_int_equal(make_machine(&t, "raw", false), 0);
	enumerate(&t);
	setup_queue(&t, all_features(&t));
	/* A chain that loops on itself. */
	put_desc(&t, 0, BUF, 16, TERN_VRING_DESC_F_NEXT, 1);
	put_desc(&t, 1, BUF, 16, TERN_VRING_DESC_F_NEXT, 0);
	post(&t, 0);
	for (int i = 0; i < 5000 && !(rd(&t, t.common + 0x14, 1) & VIRTIO_S_NEEDS_RESET); i++)
		usleep(1000);
	assert_true(rd(&t, t.common + 0x14, 1) & VIRTIO_S_NEEDS_RESET);
	assert_true(__atomic_load_n(&t.raised[1], __ATOMIC_SEQ_CST) > 0);
	/* A reset brings it back. */
	setup_queue(&t, all_features(&t));
	assert_false(rd(&t, t.common + 0x14, 1) & VIRTIO_S_NEEDS_RESET);
	assert_int_equal(request(&t, VIRTIO_BLK_T_IN, 0, 512, true), VIRTIO_BLK_S_OK);
	free_machine(&t);
}

static void isr_without_msix(void **state)
{
	(void)state;
	struct t t;
	assert_int_equal(make_machine(&t, "raw", false), 0);
	enumerate(&t);
	/* MSI-X off again: interrupts are INTx, the ISR says why. */
	for (unsigned c = cfg_read(&t, PCI_REG_CAP_PTR, 1); c != 0; c = cfg_read(&t, c + 1, 1))
		if (cfg_read(&t, c, 1) == PCI_CAP_ID_MSIX)
			cfg_write(&t, c + 2, 2, 0);
	setup_queue(&t, all_features(&t));
	assert_int_equal(request(&t, VIRTIO_BLK_T_IN, 0, 512, true), VIRTIO_BLK_S_OK);
	for (int i = 0; i < 1000 && rd(&t, t.isr, 1) == 0 && t.raised[VIRTIO_PCI_MAX_VECTORS] == 0; i++)
		usleep(1000);
	assert_true(t.raised[VIRTIO_PCI_MAX_VECTORS] > 0);
	free_machine(&t);
}

/* quiesce, save, a fresh device on the same image and RAM loads, and the
 * driver carries on with the ring where it was. */
static void state_round_trip(void **state)
{
	(void)state;
	struct t *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
	assert_int_equal(make_machine(a, "raw", false), 0);
	enumerate(a);
	setup_queue(a, all_features(a));
	for (unsigned i = 0; i < 1024; i++)
		a->ram[BUF + i] = (uint8_t)(i ^ 0x5a);
	assert_int_equal(request(a, VIRTIO_BLK_T_OUT, 4, 1024, false), VIRTIO_BLK_S_OK);
	assert_int_equal(request(a, VIRTIO_BLK_T_FLUSH, 0, 0, false), VIRTIO_BLK_S_OK);
	virtio_blk_quiesce(&a->vb);
	struct virtio_pci_state *s = calloc(1, sizeof *s);
	struct tern_error err = {0};
	assert_int_equal(virtio_pci_save(&a->vb.vp, s, &err), 0);
	assert_true(s->q[0].vq.started);
	uint8_t *ram = malloc(RAM);
	memcpy(ram, a->ram, RAM);
	snprintf(reuse_dir, sizeof reuse_dir, "%s", a->dir);
	snprintf(reuse_path, sizeof reuse_path, "%s", a->path);
	free_machine(a);

	assert_int_equal(make_machine(b, "raw", false), 0);
	enumerate(b);
	memcpy(b->ram, ram, RAM);
	b->avail_idx = a->avail_idx;
	b->used_seen = a->used_seen;
	b->next_desc = a->next_desc;
	/* A shape this device cannot have is refused. */
	s->num_queues = 2;
	assert_int_equal(virtio_pci_load(&b->vb.vp, s, &err), -EINVAL);
	s->num_queues = 1;
	assert_int_equal(virtio_pci_load(&b->vb.vp, s, &err), 0);
	assert_true(rd(b, b->common + 0x14, 1) & VIRTIO_S_DRIVER_OK);
	memset(b->ram + BUF, 0, 1024);
	assert_int_equal(request(b, VIRTIO_BLK_T_IN, 4, 1024, true), VIRTIO_BLK_S_OK);
	for (unsigned i = 0; i < 1024; i++)
		assert_int_equal(b->ram[BUF + i], (uint8_t)(i ^ 0x5a));
	uint16_t used_idx;
	memcpy(&used_idx, b->ram + USED + 2, 2);
	assert_int_equal(used_idx, 3);
	reuse_path[0] = '\0';
	free_machine(b);
	unlink(reuse_path[0] ? reuse_path : a->path);
	rmdir(a->dir);
	free(ram);
	free(s);
	free(a);
	free(b);
}

/* --drive / --device virtio-blk-pci options are parsed strictly, before
 * anything is opened. */
static void options(void **state)
{
	(void)state;
	const char *bad[] = {
		"", "format=raw", "file=x,bogus=1", "file=x,format=vmdk", "file=x,cache=unsafe",
		"file=x,readonly=yes", "file=x,id=123456789012345678901", "file=x,if=ide", "file",
		"file=",
	};
	struct device_env env = {0};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct tern_error err = {0};
		void *dev = NULL;
		assert_int_equal(virtio_blk_kind.create(&env, bad[i], &dev, &err), -EINVAL);
		assert_true(err.msg[0] != '\0');
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(negotiation),
		cmocka_unit_test(raw_io),
		cmocka_unit_test(qcow2_io),
		cmocka_unit_test(readonly),
		cmocka_unit_test(hostile_ring),
		cmocka_unit_test(isr_without_msix),
		cmocka_unit_test(state_round_trip),
		cmocka_unit_test(options),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
