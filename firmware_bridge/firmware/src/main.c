/*
 * labedge board firmware: frames from the host over USART0 (PROTOCOL.md) drive digital outputs,
 * a PWM output, a stepper and analog reads; every output has a max_duration watchdog.
 */
#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/sleep.h>
#include <avr/wdt.h>
#include <stdlib.h>

#include "analog.h"
#include "bootid.h"
#include "commands.h"
#include "frame.h"
#include "outputs.h"
#include "text.h"
#include "tick.h"
#include "uart.h"

/* Bytes handled per loop pass, so timers and the watchdog are looked at between bursts. */
#define RX_BURST 32

/* After a watchdog reset the watchdog stays on at 16 ms: turn it off before the C runtime starts. */
void early_init(void) __attribute__((naked, used, section(".init3")));
void early_init(void) {
    MCUSR = 0;
    wdt_disable();
}

static char boot_id[9];

static void send_hello(void) {
    body_t b;
    body_clear(&b);
    body_str(&b, "0 HELLO " PROTOCOL_VERSION " " FIRMWARE_VERSION " ");
    body_str(&b, boot_id);
    frame_send(b.buf);
}

static void send_event(const char *kind, const char *channel, int32_t value, uint8_t with_value) {
    body_t b;
    body_clear(&b);
    body_str(&b, "0 ");
    body_str(&b, kind);
    body_str(&b, " ");
    body_str(&b, channel);
    if (with_value) {
        body_str(&b, " ");
        body_i32(&b, value);
    }
    frame_send(b.buf);
}

static void idle(void) {
    /* Sleep until the next interrupt (1 ms tick at the latest) unless a byte already waits. */
    set_sleep_mode(SLEEP_MODE_IDLE);
    cli();
    if (!uart_rx_pending()) {
        sleep_enable();
        sei();
        sleep_cpu();
        sleep_disable();
    }
    sei();
}

int main(void) {
    uint32_t id = bootid_make();
    static const char hex[] = "0123456789ABCDEF";
    for (uint8_t i = 0; i < 8; i++) boot_id[i] = hex[(id >> (28 - 4 * i)) & 0xF];
    boot_id[8] = '\0';

    /* INT0/INT1 (D2, D3) are unused and masked; edge mode instead of the reset default (low
       level) spares simavr a pin poll on every cycle while D2 or D3 is low. */
    EICRA = _BV(ISC01) | _BV(ISC11);
    outputs_init();
    analog_init();
    tick_init();
    uart_init();
    commands_init();
    frame_rx_reset();
    wdt_enable(WDTO_250MS); /* a hung loop resets the board: outputs low, a new HELLO */
    sei();

    static char body[BODY_MAX + 1];
    send_hello();
    uint32_t hello_at = tick_ms() + HELLO_EVERY_MS;
    for (;;) {
        wdt_reset();
        for (uint8_t n = 0; n < RX_BURST; n++) {
            int16_t c = uart_getc();
            if (c < 0) break;
            if (frame_rx_byte((uint8_t)c, body) >= 0) commands_handle(body, tick_ms());
        }
        uint32_t now = tick_ms();
        int8_t i;
        while ((i = outputs_expire(now)) >= 0) send_event("EXPIRED", outputs_name(i), 0, 0);
        while ((i = analog_due(now)) >= 0) {
            char name[3] = {'A', (char)('0' + i), '\0'};
            send_event("AIN", name, analog_read((uint8_t)i), 1);
        }
        if (!commands_host_seen() && tick_due(now, hello_at)) {
            send_hello();
            hello_at = now + HELLO_EVERY_MS;
        }
        idle();
    }
}
