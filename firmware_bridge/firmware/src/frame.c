#include "frame.h"

#include "crc16.h"
#include "uart.h"

frame_counters_t frame_counters;

enum { WAIT_START, IN_BODY, IN_CRC, WAIT_LF };

static uint8_t state = WAIT_START;
static uint8_t count;    /* bytes since '$', '$' included */
static uint8_t body_len;
static uint8_t crc_digits;
static uint16_t crc_seen;

void frame_rx_reset(void) { state = WAIT_START; }

static int8_t hex_value(uint8_t c) {
    if (c >= '0' && c <= '9') return (int8_t)(c - '0');
    if (c >= 'A' && c <= 'F') return (int8_t)(c - 'A' + 10);
    return -1;
}

static void drop(uint16_t *counter) {
    (*counter)++;
    state = WAIT_START;
}

int8_t frame_rx_byte(uint8_t c, char body[BODY_MAX + 1]) {
    if (c == '$') {
        /* A start drops whatever was being collected: a lost '\n' costs one frame, not two. */
        if (state != WAIT_START) frame_counters.bad_frame++;
        state = IN_BODY;
        count = 1;
        body_len = 0;
        return -1;
    }
    if (state == WAIT_START) return -1; /* noise between frames */
    if (++count > FRAME_MAX) {
        drop(&frame_counters.overlong);
        return -1;
    }
    switch (state) {
    case IN_BODY:
        if (c == '*') {
            state = IN_CRC;
            crc_digits = 0;
            crc_seen = 0;
        } else if (c < 0x20 || c > 0x7E) {
            drop(&frame_counters.bad_frame);
        } else if (body_len < BODY_MAX) {
            body[body_len++] = (char)c;
        }
        /* else: a body past BODY_MAX bytes is not stored (the buffer ends there); the frame can no
           longer fit 64 bytes, so `count` drops it as overlong before its '\n'. */
        return -1;
    case IN_CRC: {
        int8_t v = hex_value(c);
        if (v < 0) {
            drop(&frame_counters.bad_frame);
            return -1;
        }
        crc_seen = (uint16_t)((crc_seen << 4) | (uint8_t)v);
        if (++crc_digits == 4) state = WAIT_LF;
        return -1;
    }
    case WAIT_LF:
        if (c == '\r') return -1;
        if (c != '\n') {
            drop(&frame_counters.bad_frame);
            return -1;
        }
        state = WAIT_START;
        if (crc16(body, body_len) != crc_seen) {
            frame_counters.bad_crc++;
            return -1;
        }
        body[body_len] = '\0';
        return (int8_t)body_len;
    }
    return -1;
}

static const char HEX[] = "0123456789ABCDEF";

void frame_send(const char *body) {
    uint16_t crc = CRC16_INIT;
    uart_putc('$');
    for (const char *p = body; *p; p++) {
        crc = crc16_update(crc, (uint8_t)*p);
        uart_putc((uint8_t)*p);
    }
    uart_putc('*');
    for (int8_t shift = 12; shift >= 0; shift -= 4) uart_putc((uint8_t)HEX[(crc >> shift) & 0xF]);
    uart_putc('\n');
}
