/* TSC calibration with PIT channel 2 and the PIT/PIC set-up for sleeping. */
#include "timer.h"

#include "io.h"
#include "layout.h"

#define PIT_HZ 1193182
#define PIT_CH0 0x40
#define PIT_CH2 0x42
#define PIT_CMD 0x43
#define PORT_B 0x61
#define PIC1 0x20
#define PIC2 0xa0

static uint64_t hz;

uint64_t tsc_hz(void)
{
	return hz;
}

/* Time a 50 ms one-shot on PIT channel 2 (gate via port 0x61) with the TSC. */
static void calibrate_tsc(void)
{
	const uint32_t divisor = PIT_HZ / 20;
	outb(PORT_B, (uint8_t)((inb(PORT_B) & ~0x02) | 0x01));
	outb(PIT_CMD, 0xb0); /* channel 2, lo/hi byte, mode 0 */
	outb(PIT_CH2, divisor & 0xff);
	uint64_t t0 = rdtsc();
	outb(PIT_CH2, divisor >> 8);
	while (!(inb(PORT_B) & 0x20))
		cpu_relax();
	uint64_t t1 = rdtsc();
	hz = (t1 - t0) * PIT_HZ / divisor;
	if (hz == 0)
		hz = 1;
}

static void init_pics(void)
{
	outb(PIC1, 0x11);
	outb(PIC2, 0x11);
	outb(PIC1 + 1, VEC_PIC_MASTER);
	outb(PIC2 + 1, VEC_PIC_SLAVE);
	outb(PIC1 + 1, 4);
	outb(PIC2 + 1, 2);
	outb(PIC1 + 1, 0x01);
	outb(PIC2 + 1, 0x01);
	outb(PIC1 + 1, 0xfe); /* only IRQ 0, the PIT tick */
	outb(PIC2 + 1, 0xff);
}

void timer_init(void)
{
	calibrate_tsc();
	init_pics();
	const uint32_t divisor = PIT_HZ / TICK_HZ;
	outb(PIT_CMD, 0x34); /* channel 0, lo/hi byte, rate generator */
	outb(PIT_CH0, divisor & 0xff);
	outb(PIT_CH0, divisor >> 8);
}

void sleep_tick(void)
{
	/* Faults to ring 0, which halts until the next interrupt. */
	__asm__ volatile("hlt" : : : "memory");
}

void sleep_until(uint64_t deadline)
{
	const uint64_t tick = hz / TICK_HZ;
	for (;;) {
		uint64_t now = rdtsc();
		if (now >= deadline)
			return;
		if (deadline - now > tick)
			sleep_tick();
		else
			cpu_relax();
	}
}
