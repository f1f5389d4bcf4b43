/*
 * UART0 <-> pseudo-terminal. Bytes from the host enter the UART at the line rate the firmware
 * programmed (one byte per 10 bit times), and only while the UART's flow IRQs say XON, so none is
 * lost in the emulator's own receive FIFO; bytes the firmware sends go out to the pty.
 */
#ifndef RIG_UARTLINK_H
#define RIG_UARTLINK_H
#include "sim_avr.h"

void uartlink_attach(avr_t *avr, int pty_master);
/* The MCU was reset (simavr dropped its cycle timers): pace input again from now. */
void uartlink_reset(void);
/* Read what the host wrote, start feeding it; write out what the firmware sent. */
void uartlink_poll(void);
/* Bytes the pty would not take (no host reading, its buffer full): dropped like a real line. */
unsigned long uartlink_dropped(void);
#endif
