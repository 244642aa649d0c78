/* The 16550A model: registers, interrupts, input buffering, loopback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "devices/uart.h"

struct sink {
	uint8_t out[64];
	size_t out_len;
	int irq_level, irq_changes;
	int full; /* the backend takes nothing */
};

static size_t transmit(void *opaque, const uint8_t *data, size_t len)
{
	struct sink *s = opaque;
	if (s->full)
		return 0;
	memcpy(s->out + s->out_len, data, len);
	s->out_len += len;
	return len;
}

static size_t tx_room(void *opaque)
{
	struct sink *s = opaque;
	return s->full ? 0 : sizeof s->out - s->out_len;
}

static void set_irq(void *opaque, int level)
{
	struct sink *s = opaque;
	s->irq_level = level;
	s->irq_changes++;
}

static const struct uart_backend backend = { transmit, tx_room, set_irq };

enum { THR = 0, IER = 1, IIR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7 };

static void transmit_and_line_status(void **state)
{
	(void)state;
	struct sink s = { 0 };
	struct uart u;
	uart_init(&u, &backend, &s);
	assert_int_equal(uart_read(&u, LSR) & 0x61, 0x60); /* THRE, TEMT, no data */
	uart_write(&u, THR, 'h');
	uart_write(&u, THR, 'i');
	assert_int_equal(s.out_len, 2);
	assert_memory_equal(s.out, "hi", 2);
	uart_write(&u, SCR, 0x5a);
	assert_int_equal(uart_read(&u, SCR), 0x5a);
	/* A backend without room makes the transmitter read busy. */
	s.full = 1;
	assert_int_equal(uart_read(&u, LSR) & 0x60, 0);
	s.full = 0;
	assert_int_equal(uart_read(&u, LSR) & 0x60, 0x60);
	uart_destroy(&u);
}

static void divisor_latch(void **state)
{
	(void)state;
	struct sink s = { 0 };
	struct uart u;
	uart_init(&u, &backend, &s);
	uart_write(&u, LCR, 0x83);
	uart_write(&u, 0, 0x01);
	uart_write(&u, 1, 0x02);
	assert_int_equal(uart_read(&u, 0), 0x01);
	assert_int_equal(uart_read(&u, 1), 0x02);
	assert_int_equal(s.out_len, 0); /* DLL writes are not data */
	uart_write(&u, LCR, 0x03);
	assert_int_equal(uart_read(&u, IER), 0); /* IER untouched */
	uart_destroy(&u);
}

static void receive_buffering_and_rx_interrupt(void **state)
{
	(void)state;
	struct sink s = { 0 };
	struct uart u;
	uart_init(&u, &backend, &s);
	assert_int_equal(uart_read(&u, IIR) & 0x0f, 0x01); /* nothing pending */
	uart_write(&u, IER, 0x01);
	assert_int_equal(s.irq_level, 0);
	assert_int_equal(uart_receive(&u, (const uint8_t *)"ab", 2), 2);
	assert_int_equal(s.irq_level, 1);
	assert_int_equal(uart_read(&u, IIR) & 0x0f, 0x04);
	assert_int_equal(uart_read(&u, LSR) & 1, 1);
	assert_int_equal(uart_read(&u, THR), 'a');
	assert_int_equal(uart_read(&u, THR), 'b');
	assert_int_equal(uart_read(&u, LSR) & 1, 0);
	assert_int_equal(s.irq_level, 0);

	/* The buffer takes what fits and never overruns. */
	uint8_t big[UART_RX_CAPACITY + 10];
	memset(big, 'x', sizeof big);
	assert_int_equal(uart_receive(&u, big, sizeof big), UART_RX_CAPACITY);
	assert_int_equal(uart_rx_room(&u), 0);
	uart_read(&u, THR);
	assert_int_equal(uart_rx_room(&u), 1);
	uart_destroy(&u);
}

static void thr_empty_interrupt(void **state)
{
	(void)state;
	struct sink s = { 0 };
	struct uart u;
	uart_init(&u, &backend, &s);
	uart_write(&u, IER, 0x02); /* enabling raises it: THR is empty */
	assert_int_equal(s.irq_level, 1);
	assert_int_equal(uart_read(&u, IIR) & 0x0f, 0x02);
	assert_int_equal(s.irq_level, 0); /* reading IIR cleared it */
	uart_write(&u, THR, 'z');
	assert_int_equal(s.irq_level, 1); /* sent at once, empty again */
	/* Received data outranks THR empty. */
	uart_write(&u, IER, 0x03);
	uart_receive(&u, (const uint8_t *)"q", 1);
	assert_int_equal(uart_read(&u, IIR) & 0x0f, 0x04);
	uart_destroy(&u);
}

static void fifo_bits_in_iir(void **state)
{
	(void)state;
	struct sink s = { 0 };
	struct uart u;
	uart_init(&u, &backend, &s);
	assert_int_equal(uart_read(&u, IIR) & 0xc0, 0);
	uart_write(&u, IIR, 0x07);
	assert_int_equal(uart_read(&u, IIR) & 0xc0, 0xc0);
	uart_receive(&u, (const uint8_t *)"abc", 3);
	uart_write(&u, IIR, 0x03); /* clear receive FIFO */
	assert_int_equal(uart_read(&u, LSR) & 1, 0);
	uart_destroy(&u);
}

static void loopback(void **state)
{
	(void)state;
	struct sink s = { 0 };
	struct uart u;
	uart_init(&u, &backend, &s);
	uart_write(&u, MCR, 0x10 | 0x0f);
	uart_write(&u, THR, 'L');
	assert_int_equal(s.out_len, 0);                     /* not sent out */
	assert_int_equal(uart_read(&u, THR), 'L');          /* but received */
	assert_int_equal(uart_read(&u, MSR) & 0xf0, 0xf0);  /* outputs wired back */
	assert_int_equal(uart_rx_room(&u), 0);              /* outside input held off */
	assert_int_equal(uart_receive(&u, (const uint8_t *)"x", 1), 0);
	uart_destroy(&u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(transmit_and_line_status),
		cmocka_unit_test(divisor_latch),
		cmocka_unit_test(receive_buffering_and_rx_interrupt),
		cmocka_unit_test(thr_empty_interrupt),
		cmocka_unit_test(fifo_bits_in_iir),
		cmocka_unit_test(loopback),
	};
	return cmocka_run_group_tests_name("uart", tests, NULL, NULL);
}
