/* What the rig sees of the MCU's pins: levels, when they changed, step pulses, PWM duty, ADC inputs. */
#ifndef RIG_PROBES_H
#define RIG_PROBES_H
#include <stdint.h>

#include "sim_avr.h"

/* Listen to every pin of ports B, C and D. */
void probes_attach(avr_t *avr);
/* The MCU was reset: its ports are inputs again, every pin low. */
void probes_reset(avr_t *avr);

/* Arduino Uno pin name (D0..D13, A0..A5) to port letter and bit; 0 when unknown. */
int probes_pin_by_name(const char *name, char *port, int *bit);
int probes_level(char port, int bit);
avr_cycle_count_t probes_changed_at(char port, int bit);
/* Rising edges on D5 (the step pin) since start, and the cycles between the last two. */
uint64_t probes_steps(void);
avr_cycle_count_t probes_step_interval(void);
/* Duty 0..255 seen on D3 (OC2B): from Timer2's registers when its output is connected to the pin. */
int probes_pwm_d3(avr_t *avr);
/* Drive analog input `ch` (0..5) with `millivolts`. */
void probes_adc(avr_t *avr, int ch, uint32_t millivolts);
#endif
