#include "analog.h"

#include <avr/io.h>

#include "tick.h"

static uint16_t period_ms[ANALOG_CHANNELS];
static uint32_t next_at[ANALOG_CHANNELS];

void analog_init(void) {
    DIDR0 = 0x3F;                                         /* digital input buffers off on A0..A5 */
    ADMUX = _BV(REFS0);                                   /* AVcc reference */
    ADCSRA = _BV(ADEN) | _BV(ADPS2) | _BV(ADPS1) | _BV(ADPS0); /* 125 kHz: 104 us a conversion */
    (void)analog_read(0); /* the first conversion after the boot id's 1.1 V reads is off: drop it */
}

uint16_t analog_read(uint8_t ch) {
    ADMUX = (uint8_t)(_BV(REFS0) | (ch & 0x0F));
    ADCSRA |= _BV(ADSC);
    while (ADCSRA & _BV(ADSC)) {
    }
    return ADC;
}

void analog_set_period(uint8_t ch, uint16_t ms, uint32_t now) {
    period_ms[ch] = ms;
    next_at[ch] = now + ms;
}

int8_t analog_due(uint32_t now) {
    for (uint8_t ch = 0; ch < ANALOG_CHANNELS; ch++) {
        if (period_ms[ch] && tick_due(now, next_at[ch])) {
            next_at[ch] += period_ms[ch];
            if (tick_due(now, next_at[ch])) next_at[ch] = now + period_ms[ch]; /* fell behind: no burst */
            return (int8_t)ch;
        }
    }
    return -1;
}
