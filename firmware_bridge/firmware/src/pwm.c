#include "pwm.h"

#include <avr/io.h>

void pwm_init(void) {
    PORTD &= (uint8_t)~_BV(PD3);
    DDRD |= _BV(PD3);
    TCCR2A = _BV(WGM20); /* phase-correct PWM, TOP 0xFF, OC2B disconnected until a duty is set */
    TCCR2B = 0;          /* stopped while the pin is a plain output */
    OCR2A = 0xFF;
    OCR2B = 0;
}

void pwm_set(uint8_t duty) {
    /* 0 and 255 drive the pin as a plain output: no glitch at the ends of the range. */
    if (duty == 0 || duty == 255) {
        TCCR2A &= (uint8_t)~(_BV(COM2B1) | _BV(COM2B0));
        TCCR2B = 0;
        if (duty) PORTD |= _BV(PD3);
        else PORTD &= (uint8_t)~_BV(PD3);
        OCR2B = duty;
        return;
    }
    OCR2B = duty;
    TCCR2B = _BV(CS22); /* clk/64: 16 MHz / 64 / 510 = 490 Hz */
    TCCR2A = (uint8_t)((TCCR2A & (uint8_t)~_BV(COM2B0)) | _BV(COM2B1)); /* non-inverting */
}
