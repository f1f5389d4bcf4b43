/*
 * The outputs (digital D2 D4 D7 D8, PWM D3, stepper S1) and their max_duration watchdog:
 * an output not refreshed within its max_ms returns to its default on its own.
 */
#ifndef OUTPUTS_H
#define OUTPUTS_H
#include <stdint.h>

typedef enum { OUT_DIGITAL, OUT_PWM, OUT_STEPPER } output_kind_t;

#define OUTPUT_COUNT 6

void outputs_init(void);
/* Index of the output named `name` of that kind, or -1. */
int8_t outputs_find(const char *name, output_kind_t kind);
/* Index of the output named `name` of any kind, or -1. */
int8_t outputs_find_any(const char *name);
/* Set output `i` to `value` for max_ms from now; a default value needs no refresh. */
void outputs_set(int8_t i, int16_t value, uint32_t max_ms);
/* Return expired outputs to their default; the index of one that just expired, or -1. */
int8_t outputs_expire(uint32_t now);
const char *outputs_name(int8_t i);
int16_t outputs_value(int8_t i);
/* Milliseconds until output `i` returns to its default; 0 when it is at its default. */
uint32_t outputs_ms_left(int8_t i, uint32_t now);
#endif
