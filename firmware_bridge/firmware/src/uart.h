/* USART0 at BAUD, 8N1, with interrupt-driven receive and transmit ring buffers. */
#ifndef UART_H
#define UART_H
#include <stdint.h>

void uart_init(void);
/* Next received byte, or -1 when none is waiting. */
int16_t uart_getc(void);
/* Queue one byte; waits (resetting the hardware watchdog) while the ring is full. */
void uart_putc(uint8_t c);
/* Bytes dropped because the receive ring was full, since boot. */
uint16_t uart_rx_overflows(void);
/* True when a byte is waiting (for the idle sleep decision). */
uint8_t uart_rx_pending(void);
#endif
