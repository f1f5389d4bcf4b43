#include "stepper.h"

#include <avr/interrupt.h>
#include <avr/io.h>
#include <util/delay.h>

void stepper_init(void) {
    PORTD &= (uint8_t)~(_BV(PD5) | _BV(PD6));
    DDRD |= _BV(PD5) | _BV(PD6);
    TCCR1A = 0;
    TCCR1B = 0; /* stopped */
    TIMSK1 = 0;
}

void stepper_set(int16_t rate_hz) {
    TCCR1B = 0;
    TIMSK1 = 0;
    if (rate_hz == 0) {
        PORTD &= (uint8_t)~_BV(PD5);
        return;
    }
    if (rate_hz > 0) PORTD |= _BV(PD6);
    else PORTD &= (uint8_t)~_BV(PD6);
    uint32_t rate = (uint32_t)(rate_hz > 0 ? rate_hz : -rate_hz);
    /* The smallest prescaler whose 16-bit compare fits gives the finest rate resolution. */
    uint8_t cs;
    uint32_t ticks = F_CPU / 8 / rate;
    if (ticks <= 65536UL) {
        cs = _BV(CS11);
    } else if ((ticks = F_CPU / 64 / rate) <= 65536UL) {
        cs = _BV(CS11) | _BV(CS10);
    } else {
        ticks = F_CPU / 256 / rate;
        cs = _BV(CS12);
    }
    OCR1A = (uint16_t)(ticks - 1);
    TCNT1 = 0;
    TIFR1 = _BV(OCF1A);
    TIMSK1 = _BV(OCIE1A);
    TCCR1B = (uint8_t)(_BV(WGM12) | cs); /* CTC, TOP = OCR1A */
}

ISR(TIMER1_COMPA_vect) {
    /* A 2 us pulse: drivers such as the A4988 need 1 us high. */
    PORTD |= _BV(PD5);
    _delay_us(2);
    PORTD &= (uint8_t)~_BV(PD5);
}
