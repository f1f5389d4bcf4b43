/* Frames `$<body>*<CRC>\n` (PROTOCOL.md): a byte-wise receiver and a sender. */
#ifndef FRAME_H
#define FRAME_H
#include <stdint.h>

#include "board.h"

typedef struct {
    uint16_t bad_crc;   /* CRC did not match */
    uint16_t bad_frame; /* a byte out of place, a truncated frame, or a body that does not parse */
    uint16_t overlong;  /* more than FRAME_MAX bytes without '\n' */
} frame_counters_t;

extern frame_counters_t frame_counters;

void frame_rx_reset(void);
/*
 * Feed one received byte. Returns the body length (>= 0) when a frame with a good CRC has just
 * ended, its body NUL-terminated in `body`; -1 otherwise.
 */
int8_t frame_rx_byte(uint8_t c, char body[BODY_MAX + 1]);
/* Send `body` (at most BODY_MAX bytes) as one frame. */
void frame_send(const char *body);
#endif
