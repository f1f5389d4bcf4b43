/* Stepper S1: step pulses on D5 (PD5) at a commanded rate from Timer1, direction on D6 (PD6). */
#ifndef STEPPER_H
#define STEPPER_H
#include <stdint.h>

#define STEP_RATE_MAX 2000

void stepper_init(void);
/* Steps per second, the sign is the direction (D6 high for positive); 0 stops. */
void stepper_set(int16_t rate_hz);
#endif
