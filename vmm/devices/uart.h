/*
 * A 16550A UART as the guest sees it at COM1.  Transmitted bytes go to the
 * backend at once; the transmitter reads as empty (THRE) while the backend
 * has room for a whole FIFO load, so a guest that checks THRE never loses
 * output and a slow backend slows it down.  Received bytes wait in a buffer
 * that is never overrun: the backend stops reading while it is full.
 * Thread-safe: vCPU threads access registers, the main thread feeds input.
 */
#ifndef VMM_UART_H
#define VMM_UART_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "machine/vm_state.h"
#include "tern/vmstate.h"

#define UART_RX_CAPACITY 4096
#define UART_FIFO_SIZE 16

struct uart {
	pthread_mutex_t lock;
	uint8_t ier, lcr, mcr, lsr_errors, msr, scr, dll, dlm, fcr;
	int thr_interrupt; /* THR-empty interrupt pending until IIR is read */
	int irq_level;
	uint8_t rx[UART_RX_CAPACITY];
	size_t rx_head, rx_count;
	const struct uart_backend *backend;
	void *opaque;
};

/* Where transmitted bytes go, how much more fits there, the IRQ line. */
struct uart_backend {
	size_t (*transmit)(void *opaque, const uint8_t *data, size_t len);
	size_t (*tx_room)(void *opaque);
	void (*set_irq)(void *opaque, int level);
};

void uart_init(struct uart *u, const struct uart_backend *backend, void *opaque);
void uart_destroy(struct uart *u);
uint8_t uart_read(struct uart *u, unsigned offset);
void uart_write(struct uart *u, unsigned offset, uint8_t value);
/* Main thread: how much input fits, and handing it over. */
size_t uart_rx_room(struct uart *u);
size_t uart_receive(struct uart *u, const uint8_t *data, size_t len);

/* What migrates: the registers and the input the guest has not read. */
struct uart_state {
	uint8_t ier, lcr, mcr, lsr_errors, msr, scr, dll, dlm, fcr;
	bool thr_interrupt;
	uint32_t rx_count;
	uint8_t rx[UART_RX_CAPACITY];
};

extern const struct tern_vmstate_desc uart_state_desc;

void uart_get_state(struct uart *u, struct uart_state *s);
/* Replaces the registers and the input; the IRQ line follows. */
void uart_put_state(struct uart *u, const struct uart_state *s);

/* Its entry in the state registry (machine/vm_state.h). */
extern const struct vm_state_type uart_state_type;

#endif
