/*
 * virtio-blk over virtio-pci (device id 2, PCI 1af4:1042): one request
 * queue served on the disk's I/O thread (tern_block_queue), never on a
 * vCPU thread.  The queue's kick (an ioeventfd in a VM, the notify
 * register's MMIO fallback in tests) is an eventfd the I/O thread
 * watches.  See docs/virtio-blk.md.
 */
#ifndef VMM_DEVICES_VIRTIO_BLK_H
#define VMM_DEVICES_VIRTIO_BLK_H

#include <pthread.h>
#include <stdbool.h>

#include "devices/virtio_pci.h"
#include "tern/block.h"

#define VIRTIO_ID_BLOCK 2
#define VBLK_QUEUE_SIZE 256
#define VBLK_SEG_MAX (VBLK_QUEUE_SIZE - 2)
#define VBLK_ID_BYTES 20
#define VBLK_CONFIG_LEN 60

/* Feature bits (virtio 1.x, "Block Device"). */
#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_F_TOPOLOGY 10
#define VIRTIO_BLK_F_MQ 12
#define VIRTIO_BLK_F_DISCARD 13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_T_DISCARD 11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2

/* One discard/write-zeroes range per request, and at most this many
 * sectors in it (what QEMU offers). */
#define VBLK_MAX_DISCARD_SECTORS (1u << 22)

struct virtio_blk_opts {
	struct tern_block *blk;	/* the disk; the device does not close it */
	const char *id;		/* GET_ID's answer (up to 20 bytes), may be NULL */
	bool readonly;
	const struct tern_guest_mem *mem;
	enum tern_block_engine engine;
};

struct virtio_blk {
	struct virtio_pci vp;
	struct tern_block *blk;
	struct tern_block_queue *bq;
	int kick_fd;	       /* eventfd: the queue's doorbell */
	pthread_mutex_t vq_lock; /* pop/push/flush vs start/reset */
	bool readonly;
	char id[VBLK_ID_BYTES];
	uint8_t config[VBLK_CONFIG_LEN];
	unsigned inflight;     /* under vq_lock */
	bool resetting;        /* under vq_lock: a reset is draining, pop nothing */
};

int virtio_blk_init(struct virtio_blk *vb, const struct virtio_blk_opts *o, struct tern_error *err);
/* Stops the I/O thread (drains first); the disk stays open. */
void virtio_blk_destroy(struct virtio_blk *vb);
/* Finish every request in flight (before a reset or a state save). */
void virtio_blk_quiesce(struct virtio_blk *vb);

/* virtio_blk_device.c: --device virtio-blk-pci,... (and --drive). */
struct device_kind;
extern const struct device_kind virtio_blk_kind;

#endif
