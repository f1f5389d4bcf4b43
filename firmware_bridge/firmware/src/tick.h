/* Millisecond tick on Timer0 (CTC, 1 kHz). */
#ifndef TICK_H
#define TICK_H
#include <stdint.h>

void tick_init(void);
/* Milliseconds since boot; wraps after 49 days, compare with tick_due(). */
uint32_t tick_ms(void);
/* True when `now` has reached `deadline` (wrap-safe for spans under 24 days). */
static inline uint8_t tick_due(uint32_t now, uint32_t deadline) {
    return (int32_t)(now - deadline) >= 0;
}
#endif
