/* Time in the guest: the TSC, calibrated against the PIT, and a 100 Hz
 * PIT tick that wakes the guest from its sleep call. */
#ifndef GUEST_TIMER_H
#define GUEST_TIMER_H

#include <stdint.h>

#define TICK_HZ 100

void timer_init(void);
uint64_t tsc_hz(void);
/* Sleep until the next timer tick (at most 1/TICK_HZ s). */
void sleep_tick(void);
/* Sleep (ticks first, then spinning) until the TSC reaches `deadline`. */
void sleep_until(uint64_t deadline);

#endif
