/* A random id per boot, so the host notices every reset (PROTOCOL.md, HELLO). */
#ifndef BOOTID_H
#define BOOTID_H
#include <stdint.h>

/*
 * Mixes uninitialised SRAM, ADC noise and a seed kept in EEPROM that changes on every boot (so
 * the id differs even where SRAM and the ADC are deterministic, as in an emulator). Call once,
 * before the ADC is set up for the analog inputs.
 */
uint32_t bootid_make(void);
#endif
