/* 16550 UART on COM1: polled output in FIFO-sized bursts, polled input. */
#include "console.h"

#include <stdint.h>

#include "io.h"

#define COM1 0x3f8
#define UART_RBR 0
#define UART_THR 0
#define UART_IER 1
#define UART_FCR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_DLL 0
#define UART_DLM 1
#define LSR_DR 0x01
#define LSR_THRE 0x20
#define FIFO_SIZE 16

void console_init(void)
{
	outb(COM1 + UART_IER, 0x00);
	outb(COM1 + UART_LCR, 0x80); /* DLAB */
	outb(COM1 + UART_DLL, 0x01); /* 115200 baud */
	outb(COM1 + UART_DLM, 0x00);
	outb(COM1 + UART_LCR, 0x03); /* 8N1 */
	outb(COM1 + UART_FCR, 0x07); /* enable and clear FIFOs */
	outb(COM1 + UART_MCR, 0x03); /* DTR, RTS */
}

void console_write(const char *s, size_t n)
{
	/* One LSR read per FIFO load: each port access is a VM exit. */
	while (n > 0) {
		while (!(inb(COM1 + UART_LSR) & LSR_THRE))
			cpu_relax();
		size_t burst = n < FIFO_SIZE ? n : FIFO_SIZE;
		for (size_t i = 0; i < burst; i++)
			outb(COM1 + UART_THR, (uint8_t)s[i]);
		s += burst;
		n -= burst;
	}
}

int console_poll_byte(void)
{
	if (!(inb(COM1 + UART_LSR) & LSR_DR))
		return -1;
	return inb(COM1 + UART_RBR);
}

static size_t put_unsigned(char *out, size_t room, unsigned long long v, unsigned base,
			   int width, char pad)
{
	char digits[24];
	int n = 0;
	do {
		unsigned d = (unsigned)(v % base);
		digits[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
		v /= base;
	} while (v != 0);
	size_t len = 0;
	for (int i = n; i < width; i++)
		if (len < room)
			out[len++] = pad;
	while (n > 0)
		if (len < room)
			out[len++] = digits[--n];
		else
			n--;
	return len;
}

int format(char *buf, size_t size, const char *fmt, va_list ap)
{
	size_t len = 0;
	size_t room = size > 0 ? size - 1 : 0;
	for (const char *p = fmt; *p != '\0'; p++) {
		if (*p != '%') {
			if (len < room)
				buf[len++] = *p;
			continue;
		}
		p++;
		char pad = ' ';
		int width = 0;
		int longs = 0;
		if (*p == '0') {
			pad = '0';
			p++;
		}
		while (*p >= '0' && *p <= '9')
			width = width * 10 + (*p++ - '0');
		while (*p == 'l') {
			longs++;
			p++;
		}
		unsigned long long u;
		switch (*p) {
		case 's': {
			const char *s = va_arg(ap, const char *);
			while (*s != '\0' && len < room)
				buf[len++] = *s++;
			break;
		}
		case 'c':
			if (len < room)
				buf[len++] = (char)va_arg(ap, int);
			break;
		case 'd': {
			long long v = longs ? va_arg(ap, long long) : va_arg(ap, int);
			if (v < 0) {
				if (len < room)
					buf[len++] = '-';
				u = (unsigned long long)-(v + 1) + 1;
			} else {
				u = (unsigned long long)v;
			}
			len += put_unsigned(buf + len, room - len, u, 10, width, pad);
			break;
		}
		case 'u':
		case 'x':
			u = longs ? va_arg(ap, unsigned long long) : va_arg(ap, unsigned);
			len += put_unsigned(buf + len, room - len, u, *p == 'u' ? 10 : 16, width, pad);
			break;
		case 'p':
			u = (uintptr_t)va_arg(ap, void *);
			len += put_unsigned(buf + len, room - len, u, 16, width, pad);
			break;
		case '%':
			if (len < room)
				buf[len++] = '%';
			break;
		default:
			return -1;
		}
		if (*p == '\0')
			break;
	}
	if (size > 0)
		buf[len] = '\0';
	return (int)len;
}

void console_printf(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	int n = format(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n > 0)
		console_write(buf, (size_t)n);
}
