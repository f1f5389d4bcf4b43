#include "bootid.h"

#include <avr/eeprom.h>
#include <avr/io.h>

/* Not cleared by the C runtime: power-up noise in SRAM, or the last boot's state after a reset. */
static uint8_t ram_noise[16] __attribute__((section(".noinit")));
static uint32_t EEMEM eeprom_seed;

static uint32_t mix(uint32_t h, uint8_t byte) {
    h ^= byte; /* FNV-1a step */
    return h * 16777619UL;
}

static uint32_t finish(uint32_t h) {
    /* MurmurHash3's finaliser: every input bit reaches every output bit. */
    h ^= h >> 16;
    h *= 0x85EBCA6BUL;
    h ^= h >> 13;
    h *= 0xC2B2AE35UL;
    h ^= h >> 16;
    return h;
}

static uint8_t adc_noise(void) {
    /* The lowest bits of the temperature sensor against the 1.1 V reference wander. */
    ADMUX = _BV(REFS1) | _BV(REFS0) | 0x08;
    ADCSRA = _BV(ADEN) | _BV(ADPS2) | _BV(ADPS1);
    uint8_t noise = 0;
    for (uint8_t i = 0; i < 8; i++) {
        ADCSRA |= _BV(ADSC);
        while (ADCSRA & _BV(ADSC)) {
        }
        noise = (uint8_t)((noise << 1) | (ADCL & 1));
        (void)ADCH;
    }
    ADCSRA = 0;
    return noise;
}

uint32_t bootid_make(void) {
    uint32_t seed = eeprom_read_dword(&eeprom_seed) + 1;
    eeprom_update_dword(&eeprom_seed, seed);
    uint32_t h = 2166136261UL;
    for (uint8_t i = 0; i < 4; i++) h = mix(h, (uint8_t)(seed >> (8 * i)));
    for (uint8_t i = 0; i < sizeof ram_noise; i++) h = mix(h, ram_noise[i]);
    h = mix(h, adc_noise());
    h = finish(h);
    /* A warm reset keeps SRAM: leave different bytes behind for the next boot. */
    for (uint8_t i = 0; i < sizeof ram_noise; i++) ram_noise[i] ^= (uint8_t)(h >> (8 * (i & 3)));
    return h;
}
