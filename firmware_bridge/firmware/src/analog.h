/* Analog inputs A0..A5 (PC0..PC5): 10-bit reads against AVcc, on request and on a period. */
#ifndef ANALOG_H
#define ANALOG_H
#include <stdint.h>

#define ANALOG_CHANNELS 6

void analog_init(void);
uint16_t analog_read(uint8_t ch);
/* 0 stops; otherwise at least PERIOD_MIN_MS. */
void analog_set_period(uint8_t ch, uint16_t ms, uint32_t now);
/* The next channel whose period is due (its next time moved on), or -1. */
int8_t analog_due(uint32_t now);
#endif
