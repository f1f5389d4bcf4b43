/* Strict decimal parsing and a bounded builder for frame bodies. */
#ifndef TEXT_H
#define TEXT_H
#include <stdint.h>

#include "board.h"

/* Decimal digits only (at most 7), value <= max. Returns 1 on success. */
uint8_t parse_u32(const char *s, uint32_t max, uint32_t *out);
/* An optional '-' then decimal digits, -limit <= value <= limit. Returns 1 on success. */
uint8_t parse_i32(const char *s, int32_t limit, int32_t *out);

typedef struct {
    char buf[BODY_MAX + 1];
    uint8_t len;
} body_t;

void body_clear(body_t *b);
/* Appends as much of `s` as fits; returns 1 when all of it did. */
uint8_t body_str(body_t *b, const char *s);
uint8_t body_u32(body_t *b, uint32_t v);
uint8_t body_i32(body_t *b, int32_t v);
/* Room left in the body, in bytes. */
uint8_t body_room(const body_t *b);
#endif
