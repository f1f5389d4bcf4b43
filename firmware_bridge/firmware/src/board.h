/* Board constants shared by the modules: versions, baud rate, frame limits. */
#ifndef BOARD_H
#define BOARD_H

#define PROTOCOL_VERSION "1"
#define FIRMWARE_VERSION "0.1.0"
#define BAUD 115200UL

/* From '$' to '\n' included (PROTOCOL.md). */
#define FRAME_MAX 64
/* '$' + body + '*' + 4 hex digits + '\n' */
#define BODY_MAX (FRAME_MAX - 7)

#define MAX_MS_LIMIT 600000UL
#define PERIOD_MIN_MS 50U
#define HELLO_EVERY_MS 1000U

#endif
