#include "outputs.h"

#include <avr/io.h>
#include <string.h>

#include "pwm.h"
#include "stepper.h"
#include "tick.h"

typedef struct {
    char name[3];
    output_kind_t kind;
    volatile uint8_t *port; /* digital only */
    uint8_t bit;
} output_def_t;

static const output_def_t defs[OUTPUT_COUNT] = {
    {"D2", OUT_DIGITAL, &PORTD, PD2}, {"D4", OUT_DIGITAL, &PORTD, PD4},
    {"D7", OUT_DIGITAL, &PORTD, PD7}, {"D8", OUT_DIGITAL, &PORTB, PB0},
    {"D3", OUT_PWM, 0, 0},            {"S1", OUT_STEPPER, 0, 0},
};

static int16_t value[OUTPUT_COUNT];
static uint32_t deadline[OUTPUT_COUNT];

static void apply(int8_t i, int16_t v) {
    const output_def_t *d = &defs[i];
    value[i] = v;
    switch (d->kind) {
    case OUT_DIGITAL:
        if (v) *d->port |= _BV(d->bit);
        else *d->port &= (uint8_t)~_BV(d->bit);
        break;
    case OUT_PWM:
        pwm_set((uint8_t)v);
        break;
    case OUT_STEPPER:
        stepper_set(v);
        break;
    }
}

void outputs_init(void) {
    PORTD &= (uint8_t)~(_BV(PD2) | _BV(PD4) | _BV(PD7));
    PORTB &= (uint8_t)~_BV(PB0);
    DDRD |= _BV(PD2) | _BV(PD4) | _BV(PD7);
    DDRB |= _BV(PB0);
    pwm_init();
    stepper_init();
    for (int8_t i = 0; i < OUTPUT_COUNT; i++) apply(i, 0);
}

int8_t outputs_find_any(const char *name) {
    for (int8_t i = 0; i < OUTPUT_COUNT; i++) {
        if (strcmp(defs[i].name, name) == 0) return i;
    }
    return -1;
}

int8_t outputs_find(const char *name, output_kind_t kind) {
    int8_t i = outputs_find_any(name);
    return (i >= 0 && defs[i].kind == kind) ? i : -1;
}

void outputs_set(int8_t i, int16_t v, uint32_t max_ms) {
    apply(i, v);
    /* The tick read after the pin changed, +1 since it counts whole ms: the output holds max_ms at least. */
    deadline[i] = tick_ms() + max_ms + 1;
}

int8_t outputs_expire(uint32_t now) {
    for (int8_t i = 0; i < OUTPUT_COUNT; i++) {
        if (value[i] != 0 && tick_due(now, deadline[i])) {
            apply(i, 0);
            return i;
        }
    }
    return -1;
}

const char *outputs_name(int8_t i) { return defs[i].name; }

int16_t outputs_value(int8_t i) { return value[i]; }

uint32_t outputs_ms_left(int8_t i, uint32_t now) {
    if (value[i] == 0 || tick_due(now, deadline[i])) return 0;
    return deadline[i] - now;
}
