#include "probes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avr_adc.h"
#include "avr_ioport.h"
#include "sim_io.h"
#include "sim_irq.h"

static const char PORTS[] = "BCD";

typedef struct {
    char port;
    int bit;
    int level;
    avr_cycle_count_t changed_at;
    avr_t *avr;
} pin_t;

static pin_t pins[3][8];
static uint64_t steps;
static avr_cycle_count_t last_step, step_interval;

static void pin_changed(struct avr_irq_t *irq, uint32_t value, void *param) {
    (void)irq;
    pin_t *p = param;
    int level = value ? 1 : 0;
    if (level == p->level) return;
    p->level = level;
    p->changed_at = p->avr->cycle;
    if (p->port == 'D' && p->bit == 5 && level) {
        steps++;
        if (last_step) step_interval = p->avr->cycle - last_step;
        last_step = p->avr->cycle;
    }
}

void probes_attach(avr_t *avr) {
    for (int k = 0; k < 3; k++) {
        for (int b = 0; b < 8; b++) {
            pin_t *p = &pins[k][b];
            p->port = PORTS[k];
            p->bit = b;
            p->avr = avr;
            avr_irq_t *irq = avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ(PORTS[k]), IOPORT_IRQ_PIN0 + b);
            if (irq) avr_irq_register_notify(irq, pin_changed, p);
        }
    }
}

void probes_reset(avr_t *avr) {
    for (int k = 0; k < 3; k++) {
        for (int b = 0; b < 8; b++) {
            if (pins[k][b].level) {
                pins[k][b].level = 0;
                pins[k][b].changed_at = avr->cycle;
            }
        }
    }
    last_step = 0;
    step_interval = 0;
}

static pin_t *find(char port, int bit) {
    const char *k = strchr(PORTS, port);
    if (!k || bit < 0 || bit > 7) return NULL;
    return &pins[k - PORTS][bit];
}

int probes_pin_by_name(const char *name, char *port, int *bit) {
    char *end;
    if (name[0] != 'D' && name[0] != 'A') return 0;
    long n = strtol(name + 1, &end, 10);
    if (end == name + 1 || *end) return 0;
    if (name[0] == 'A' && n >= 0 && n <= 5) {
        *port = 'C';
        *bit = (int)n;
    } else if (name[0] == 'D' && n >= 0 && n <= 7) {
        *port = 'D';
        *bit = (int)n;
    } else if (name[0] == 'D' && n >= 8 && n <= 13) {
        *port = 'B';
        *bit = (int)n - 8;
    } else {
        return 0;
    }
    return 1;
}

int probes_level(char port, int bit) {
    pin_t *p = find(port, bit);
    return p ? p->level : 0;
}

avr_cycle_count_t probes_changed_at(char port, int bit) {
    pin_t *p = find(port, bit);
    return p ? p->changed_at : 0;
}

uint64_t probes_steps(void) { return steps; }

avr_cycle_count_t probes_step_interval(void) { return step_interval; }

/* ATmega328P data-space addresses. */
enum { DDRD_ = 0x2A, PORTD_ = 0x2B, TCCR2A_ = 0xB0, TCCR2B_ = 0xB1, OCR2B_ = 0xB4 };

int probes_pwm_d3(avr_t *avr) {
    uint8_t tccr2a = avr->data[TCCR2A_], tccr2b = avr->data[TCCR2B_];
    int com2b = (tccr2a >> 4) & 3;
    int wgm = (tccr2a & 3) | ((tccr2b >> 1) & 4);
    int running = (tccr2b & 7) != 0;
    if (!(avr->data[DDRD_] & (1 << 3))) return 0; /* an input drives nothing */
    if (com2b == 0 || !running) return (avr->data[PORTD_] & (1 << 3)) ? 255 : 0;
    int ocr = avr->data[OCR2B_];
    if (wgm == 1 && com2b == 2) return ocr;         /* phase correct, non-inverting: OCR/255 */
    if (wgm == 1 && com2b == 3) return 255 - ocr;   /* phase correct, inverting */
    if (wgm == 3 && com2b == 2) return ocr == 255 ? 255 : (ocr + 1) * 255 / 256; /* fast PWM */
    if (wgm == 3 && com2b == 3) return 255 - (ocr + 1) * 255 / 256;
    return -1; /* a mode this probe does not model */
}

void probes_adc(avr_t *avr, int ch, uint32_t millivolts) {
    avr_irq_t *irq = avr_io_getirq(avr, AVR_IOCTL_ADC_GETIRQ, ADC_IRQ_ADC0 + ch);
    if (irq) avr_raise_irq(irq, millivolts);
}
