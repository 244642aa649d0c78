/* 16550A register model; see uart.h. */
#include "devices/uart.h"

#include <stddef.h>
#include <string.h>

enum {
	REG_RBR_THR = 0, REG_IER = 1, REG_IIR_FCR = 2, REG_LCR = 3,
	REG_MCR = 4, REG_LSR = 5, REG_MSR = 6, REG_SCR = 7,
};

#define LCR_DLAB 0x80
#define MCR_LOOP 0x10
#define LSR_DR 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define IER_RDI 0x01
#define IER_THRI 0x02
#define IER_RLSI 0x04
#define IER_MSI 0x08
#define IIR_NONE 0x01
#define IIR_MSI 0x00
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define IIR_RLSI 0x06
#define IIR_FIFO 0xc0
#define FCR_ENABLE 0x01
#define FCR_CLEAR_RX 0x02
#define MSR_DELTAS 0x0f

void uart_init(struct uart *u, const struct uart_backend *backend, void *opaque)
{
	memset(u, 0, sizeof *u);
	pthread_mutex_init(&u->lock, NULL);
	u->backend = backend;
	u->opaque = opaque;
	u->msr = 0xb0; /* DCD, DSR, CTS: a connected line */
	u->dll = 0x0c; /* 9600 baud, the reset value */
}

void uart_destroy(struct uart *u)
{
	pthread_mutex_destroy(&u->lock);
}

static uint8_t iir_locked(const struct uart *u)
{
	uint8_t fifo = (u->fcr & FCR_ENABLE) ? IIR_FIFO : 0;
	if ((u->ier & IER_RLSI) && u->lsr_errors)
		return fifo | IIR_RLSI;
	if ((u->ier & IER_RDI) && u->rx_count > 0)
		return fifo | IIR_RDI;
	if ((u->ier & IER_THRI) && u->thr_interrupt)
		return fifo | IIR_THRI;
	if ((u->ier & IER_MSI) && (u->msr & MSR_DELTAS))
		return fifo | IIR_MSI;
	return fifo | IIR_NONE;
}

static void update_irq_locked(struct uart *u)
{
	int level = !(iir_locked(u) & IIR_NONE);
	if (level != u->irq_level) {
		u->irq_level = level;
		u->backend->set_irq(u->opaque, level);
	}
}

static void rx_push_locked(struct uart *u, uint8_t byte)
{
	if (u->rx_count == UART_RX_CAPACITY)
		return; /* loopback only; the backend never overfills */
	u->rx[(u->rx_head + u->rx_count) % UART_RX_CAPACITY] = byte;
	u->rx_count++;
}

uint8_t uart_read(struct uart *u, unsigned offset)
{
	uint8_t v = 0xff;
	pthread_mutex_lock(&u->lock);
	switch (offset) {
	case REG_RBR_THR:
		if (u->lcr & LCR_DLAB) {
			v = u->dll;
		} else if (u->rx_count > 0) {
			v = u->rx[u->rx_head];
			u->rx_head = (u->rx_head + 1) % UART_RX_CAPACITY;
			u->rx_count--;
		} else {
			v = 0;
		}
		break;
	case REG_IER:
		v = (u->lcr & LCR_DLAB) ? u->dlm : u->ier;
		break;
	case REG_IIR_FCR:
		v = iir_locked(u);
		if ((v & 0x0f) == IIR_THRI)
			u->thr_interrupt = 0;
		break;
	case REG_LCR:
		v = u->lcr;
		break;
	case REG_MCR:
		v = u->mcr;
		break;
	case REG_LSR:
		v = u->lsr_errors | (u->rx_count > 0 ? LSR_DR : 0);
		if ((u->mcr & MCR_LOOP) || u->backend->tx_room(u->opaque) >= UART_FIFO_SIZE)
			v |= LSR_THRE | LSR_TEMT;
		u->lsr_errors = 0;
		break;
	case REG_MSR:
		if (u->mcr & MCR_LOOP) /* modem outputs wired back to inputs */
			v = (uint8_t)((u->mcr & 0x0c) << 4 | (u->mcr & 0x01) << 5 |
				      (u->mcr & 0x02) << 3);
		else
			v = u->msr;
		u->msr &= (uint8_t)~MSR_DELTAS;
		break;
	case REG_SCR:
		v = u->scr;
		break;
	default:
		break;
	}
	update_irq_locked(u);
	pthread_mutex_unlock(&u->lock);
	return v;
}

void uart_write(struct uart *u, unsigned offset, uint8_t value)
{
	pthread_mutex_lock(&u->lock);
	switch (offset) {
	case REG_RBR_THR:
		if (u->lcr & LCR_DLAB) {
			u->dll = value;
			break;
		}
		if (u->mcr & MCR_LOOP)
			rx_push_locked(u, value);
		else /* a byte written while THRE was clear is lost, as on hardware */
			u->backend->transmit(u->opaque, &value, 1);
		u->thr_interrupt = 1; /* sent at once: THR is empty again */
		break;
	case REG_IER:
		if (u->lcr & LCR_DLAB) {
			u->dlm = value;
			break;
		}
		/* Enabling the THR-empty interrupt while THR is empty raises it. */
		if ((value & IER_THRI) && !(u->ier & IER_THRI))
			u->thr_interrupt = 1;
		u->ier = value & 0x0f;
		break;
	case REG_IIR_FCR:
		u->fcr = value & 0xc9;
		if (value & FCR_CLEAR_RX) {
			u->rx_head = 0;
			u->rx_count = 0;
		}
		break;
	case REG_LCR:
		u->lcr = value;
		break;
	case REG_MCR:
		u->mcr = value & 0x1f;
		break;
	case REG_SCR:
		u->scr = value;
		break;
	default: /* LSR and MSR are read-only */
		break;
	}
	update_irq_locked(u);
	pthread_mutex_unlock(&u->lock);
}

size_t uart_rx_room(struct uart *u)
{
	pthread_mutex_lock(&u->lock);
	/* In loopback mode the line is disconnected from the outside. */
	size_t room = (u->mcr & MCR_LOOP) ? 0 : UART_RX_CAPACITY - u->rx_count;
	pthread_mutex_unlock(&u->lock);
	return room;
}

size_t uart_receive(struct uart *u, const uint8_t *data, size_t len)
{
	pthread_mutex_lock(&u->lock);
	size_t n = 0;
	if (!(u->mcr & MCR_LOOP))
		for (; n < len && u->rx_count < UART_RX_CAPACITY; n++)
			rx_push_locked(u, data[n]);
	update_irq_locked(u);
	pthread_mutex_unlock(&u->lock);
	return n;
}

void uart_get_state(struct uart *u, struct uart_state *s)
{
	memset(s, 0, sizeof *s);
	pthread_mutex_lock(&u->lock);
	*s = (struct uart_state){
		.ier = u->ier, .lcr = u->lcr, .mcr = u->mcr, .lsr_errors = u->lsr_errors,
		.msr = u->msr, .scr = u->scr, .dll = u->dll, .dlm = u->dlm, .fcr = u->fcr,
		.thr_interrupt = u->thr_interrupt != 0, .rx_count = (uint32_t)u->rx_count,
	};
	for (size_t i = 0; i < u->rx_count; i++)
		s->rx[i] = u->rx[(u->rx_head + i) % UART_RX_CAPACITY];
	pthread_mutex_unlock(&u->lock);
}

void uart_put_state(struct uart *u, const struct uart_state *s)
{
	pthread_mutex_lock(&u->lock);
	u->ier = s->ier & 0x0f;
	u->lcr = s->lcr;
	u->mcr = s->mcr & 0x1f;
	u->lsr_errors = s->lsr_errors;
	u->msr = s->msr;
	u->scr = s->scr;
	u->dll = s->dll;
	u->dlm = s->dlm;
	u->fcr = s->fcr & 0xc9;
	u->thr_interrupt = s->thr_interrupt;
	u->rx_head = 0;
	u->rx_count = s->rx_count <= UART_RX_CAPACITY ? s->rx_count : UART_RX_CAPACITY;
	memcpy(u->rx, s->rx, u->rx_count);
	update_irq_locked(u);
	pthread_mutex_unlock(&u->lock);
}

static const struct tern_vmstate_field uart_fields[] = {
	TERN_VMS_FIELD_U8(struct uart_state, ier, 0),
	TERN_VMS_FIELD_U8(struct uart_state, lcr, 0),
	TERN_VMS_FIELD_U8(struct uart_state, mcr, 0),
	TERN_VMS_FIELD_U8(struct uart_state, lsr_errors, 0),
	TERN_VMS_FIELD_U8(struct uart_state, msr, 0),
	TERN_VMS_FIELD_U8(struct uart_state, scr, 0),
	TERN_VMS_FIELD_U8(struct uart_state, dll, 0),
	TERN_VMS_FIELD_U8(struct uart_state, dlm, 0),
	TERN_VMS_FIELD_U8(struct uart_state, fcr, 0),
	TERN_VMS_FIELD_BOOL(struct uart_state, thr_interrupt, 0),
	TERN_VMS_FIELD_VARRAY(struct uart_state, rx, rx_count, U8, 0),
	TERN_VMS_FIELD_END,
};

const struct tern_vmstate_desc uart_state_desc = {
	.name = "uart-16550a",
	.size = sizeof(struct uart_state),
	.version = 1,
	.min_version = 1,
	.fields = uart_fields,
};

static int uart_save(void *holder, void *obj, struct tern_error *err)
{
	(void)err;
	uart_get_state(holder, obj);
	return 0;
}

static int uart_load(void *holder, const void *obj, struct tern_error *err)
{
	(void)err;
	uart_put_state(holder, obj);
	return 0;
}

VM_STATE_TYPE(uart_state_type) = {
	.name = "uart",
	.desc = &uart_state_desc,
	.carry = VM_CARRY_ALL,
	.save = uart_save,
	.load = uart_load,
};
