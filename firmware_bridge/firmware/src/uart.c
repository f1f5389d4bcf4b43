#include "uart.h"

#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/wdt.h>

#include "board.h"

/* Powers of two, so an index wraps with a mask. 128 bytes hold two full frames. */
#define RX_SIZE 128
#define TX_SIZE 256

static volatile uint8_t rx_buf[RX_SIZE];
static volatile uint8_t rx_head, rx_tail; /* head written by the ISR */
static volatile uint8_t tx_buf[TX_SIZE];
static volatile uint8_t tx_head, tx_tail; /* tail advanced by the ISR */
static volatile uint16_t rx_overflow;

void uart_init(void) {
    /* U2X: 16 MHz / (8 * (16 + 1)) = 117647 baud, 2.1 % off 115200 (the Uno's own setting). */
    const uint16_t ubrr = (uint16_t)((F_CPU / 8 + BAUD / 2) / BAUD - 1);
    UCSR0A = _BV(U2X0); /* before UBRR0L: simavr takes the bit time from U2X0 when UBRR0L is written */
    UBRR0H = (uint8_t)(ubrr >> 8);
    UBRR0L = (uint8_t)ubrr;
    UCSR0C = _BV(UCSZ01) | _BV(UCSZ00); /* 8N1 */
    UCSR0B = _BV(RXEN0) | _BV(TXEN0) | _BV(RXCIE0);
}

ISR(USART_RX_vect) {
    uint8_t status = UCSR0A;
    uint8_t c = UDR0;
    if (status & (_BV(FE0) | _BV(DOR0))) {
        c = 0x01; /* a byte the frame parser rejects: the frame it belongs to is dropped */
    }
    uint8_t next = (uint8_t)((rx_head + 1) & (RX_SIZE - 1));
    if (next == rx_tail) {
        rx_overflow++;
        return;
    }
    rx_buf[rx_head] = c;
    rx_head = next;
}

ISR(USART_UDRE_vect) {
    if (tx_head == tx_tail) {
        UCSR0B &= (uint8_t)~_BV(UDRIE0);
        return;
    }
    UDR0 = tx_buf[tx_tail];
    tx_tail = (uint8_t)(tx_tail + 1); /* 256 entries: uint8_t wraps by itself */
}

int16_t uart_getc(void) {
    if (rx_head == rx_tail) {
        return -1;
    }
    uint8_t c = rx_buf[rx_tail];
    rx_tail = (uint8_t)((rx_tail + 1) & (RX_SIZE - 1));
    return c;
}

uint8_t uart_rx_pending(void) { return rx_head != rx_tail; }

void uart_putc(uint8_t c) {
    uint8_t next = (uint8_t)(tx_head + 1);
    while (next == tx_tail) {
        wdt_reset(); /* the ring drains at line speed: 22 ms at most */
    }
    tx_buf[tx_head] = c;
    tx_head = next;
    UCSR0B |= _BV(UDRIE0);
}

uint16_t uart_rx_overflows(void) {
    uint16_t n;
    uint8_t sreg = SREG;
    cli();
    n = rx_overflow;
    SREG = sreg;
    return n;
}
