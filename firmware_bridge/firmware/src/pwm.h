/* PWM on D3 (PD3 / OC2B), Timer2 phase-correct: the pin is high duty/255 of the time, 490 Hz. */
#ifndef PWM_H
#define PWM_H
#include <stdint.h>

void pwm_init(void);
void pwm_set(uint8_t duty);
#endif
