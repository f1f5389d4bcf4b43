#include "tick.h"

#include <avr/interrupt.h>
#include <avr/io.h>
#include <util/atomic.h>

static volatile uint32_t ms;

void tick_init(void) {
    TCCR0A = _BV(WGM01);             /* CTC, TOP = OCR0A */
    OCR0A = (F_CPU / 64 / 1000) - 1; /* 249: 1 ms at /64 */
    TIMSK0 = _BV(OCIE0A);
    TCCR0B = _BV(CS01) | _BV(CS00); /* clk/64 */
}

ISR(TIMER0_COMPA_vect) { ms++; }

uint32_t tick_ms(void) {
    uint32_t now;
    ATOMIC_BLOCK(ATOMIC_RESTORESTATE) { now = ms; }
    return now;
}
