/* COM1 output and formatted printing, usable from ring 0 and ring 3. */
#ifndef GUEST_CONSOLE_H
#define GUEST_CONSOLE_H

#include <stdarg.h>
#include <stddef.h>

void console_init(void);
void console_write(const char *s, size_t n);
/* printf subset: %s %c %d %u %x %p with l/ll, width and 0 padding. */
void console_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int format(char *buf, size_t size, const char *fmt, va_list ap);
/* Returns the next received byte, or -1 when nothing is waiting. */
int console_poll_byte(void);

#endif
