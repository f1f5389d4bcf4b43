#include "text.h"

#include <stdlib.h>

uint8_t parse_u32(const char *s, uint32_t max, uint32_t *out) {
    uint32_t v = 0;
    uint8_t digits = 0;
    for (; *s; s++, digits++) {
        if (*s < '0' || *s > '9' || digits == 7) return 0;
        v = v * 10 + (uint32_t)(*s - '0');
    }
    if (digits == 0 || v > max) return 0;
    *out = v;
    return 1;
}

uint8_t parse_i32(const char *s, int32_t limit, int32_t *out) {
    uint8_t negative = (*s == '-');
    uint32_t v;
    if (!parse_u32(s + negative, (uint32_t)limit, &v)) return 0;
    *out = negative ? -(int32_t)v : (int32_t)v;
    return 1;
}

void body_clear(body_t *b) {
    b->len = 0;
    b->buf[0] = '\0';
}

uint8_t body_room(const body_t *b) { return (uint8_t)(BODY_MAX - b->len); }

uint8_t body_str(body_t *b, const char *s) {
    while (*s) {
        if (b->len >= BODY_MAX) {
            b->buf[b->len] = '\0';
            return 0;
        }
        b->buf[b->len++] = *s++;
    }
    b->buf[b->len] = '\0';
    return 1;
}

uint8_t body_u32(body_t *b, uint32_t v) {
    char digits[11];
    ultoa(v, digits, 10);
    return body_str(b, digits);
}

uint8_t body_i32(body_t *b, int32_t v) {
    char digits[12];
    ltoa(v, digits, 10);
    return body_str(b, digits);
}
