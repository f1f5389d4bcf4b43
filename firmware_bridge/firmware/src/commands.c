#include "commands.h"

#include <string.h>

#include "analog.h"
#include "frame.h"
#include "outputs.h"
#include "stepper.h"
#include "text.h"
#include "uart.h"

#define MAX_FIELDS 6 /* SET ch level max_ms has 5 */

/* The duplicate memory: a request with the last executed number is answered from here. */
static uint8_t last_seq; /* 0: nothing executed since boot */
static body_t answer;
static uint16_t executed;
static uint16_t duplicates;
static uint8_t host_seen;

typedef struct {
    char *field[MAX_FIELDS];
    uint8_t count;
} fields_t;

void commands_init(void) {
    last_seq = 0;
    executed = 0;
    duplicates = 0;
    host_seen = 0;
}

uint8_t commands_host_seen(void) { return host_seen; }

/* Fields separated by exactly one space; an empty field (two spaces, a leading or trailing one) fails. */
static uint8_t split(char *body, fields_t *f) {
    f->count = 0;
    char *start = body;
    for (char *p = body;; p++) {
        if (*p == ' ' || *p == '\0') {
            if (p == start) return 0;
            uint8_t end = (*p == '\0');
            *p = '\0';
            if (f->count < MAX_FIELDS) f->field[f->count] = start;
            f->count++; /* counted past MAX_FIELDS, so too many fields fail the commands' count */
            if (end) return 1;
            start = p + 1;
        }
    }
}

static void err(const char *kind, const char *detail) {
    body_str(&answer, "ERR ");
    body_str(&answer, kind);
    body_str(&answer, " ");
    body_str(&answer, detail); /* cut when it does not fit: a long unknown name stays one frame */
}

#define FAIL(kind, detail) \
    do {                     \
        err(kind, detail);   \
        return;              \
    } while (0)

static void ok(void) { body_str(&answer, "OK"); }

static uint8_t parse_max_ms(const char *s, uint32_t *ms) {
    return parse_u32(s, MAX_MS_LIMIT, ms) && *ms >= 1;
}

/* SET ch level max_ms | PWM ch duty max_ms | STEP ch rate max_ms */
static void cmd_output(const fields_t *f, output_kind_t kind) {
    static const char *const value_name[] = {"level", "duty", "rate"};
    static const int32_t value_limit[] = {1, 255, STEP_RATE_MAX};
    if (f->count != 5) FAIL("bad_frame", f->field[1]);
    int8_t i = outputs_find(f->field[2], kind);
    if (i < 0) FAIL("bad_channel", f->field[2]);
    int32_t v;
    uint8_t valid;
    if (kind == OUT_STEPPER) {
        valid = parse_i32(f->field[3], value_limit[kind], &v);
    } else {
        uint32_t u;
        valid = parse_u32(f->field[3], (uint32_t)value_limit[kind], &u);
        v = (int32_t)u;
    }
    if (!valid) FAIL("bad_value", value_name[kind]);
    uint32_t max_ms;
    if (!parse_max_ms(f->field[4], &max_ms)) FAIL("bad_value", "max_ms");
    outputs_set(i, (int16_t)v, max_ms);
    ok();
}

static int8_t analog_channel(const char *name) {
    if (name[0] == 'A' && name[1] >= '0' && name[1] < '0' + ANALOG_CHANNELS && name[2] == '\0')
        return (int8_t)(name[1] - '0');
    return -1;
}

static void cmd_read(const fields_t *f) {
    if (f->count != 3) FAIL("bad_frame", f->field[1]);
    int8_t ch = analog_channel(f->field[2]);
    if (ch < 0) FAIL("bad_channel", f->field[2]);
    ok();
    body_str(&answer, " ");
    body_str(&answer, f->field[2]);
    body_str(&answer, " ");
    body_u32(&answer, analog_read((uint8_t)ch));
}

static void cmd_period(const fields_t *f, uint32_t now) {
    if (f->count != 4) FAIL("bad_frame", f->field[1]);
    int8_t ch = analog_channel(f->field[2]);
    if (ch < 0) FAIL("bad_channel", f->field[2]);
    uint32_t ms;
    if (!parse_u32(f->field[3], 60000, &ms) || (ms != 0 && ms < PERIOD_MIN_MS))
        FAIL("bad_value", "ms");
    analog_set_period((uint8_t)ch, (uint16_t)ms, now);
    ok();
}

static uint8_t status_item(int8_t i, uint32_t now, uint8_t reserve) {
    body_t item;
    body_clear(&item);
    body_str(&item, " ");
    body_str(&item, outputs_name(i));
    body_str(&item, "=");
    body_i32(&item, outputs_value(i));
    body_str(&item, "/");
    body_u32(&item, outputs_ms_left(i, now));
    if (item.len + reserve > body_room(&answer)) return 0;
    body_str(&answer, item.buf);
    return 1;
}

/* STATUS [ch]: every output (cut with " +" when the frame is full), or the one named. */
static void cmd_status(const fields_t *f, uint32_t now) {
    if (f->count > 3) FAIL("bad_frame", f->field[1]);
    if (f->count == 3) {
        int8_t i = outputs_find_any(f->field[2]);
        if (i < 0) FAIL("bad_channel", f->field[2]);
        ok();
        status_item(i, now, 0);
        return;
    }
    ok();
    for (int8_t i = 0; i < OUTPUT_COUNT; i++) {
        uint8_t last = (i == OUTPUT_COUNT - 1);
        if (!status_item(i, now, last ? 0 : 2)) {
            body_str(&answer, " +");
            return;
        }
    }
}

static void cmd_ping(const fields_t *f) {
    if (f->count != 2) FAIL("bad_frame", f->field[1]);
    ok();
    body_str(&answer, " ");
    body_u32(&answer, executed);
}

/* STATS: bad_crc bad_frame overlong duplicates rx_overflow, each since boot, mod 65536. */
static void cmd_stats(const fields_t *f) {
    if (f->count != 2) FAIL("bad_frame", f->field[1]);
    const uint16_t values[] = {frame_counters.bad_crc, frame_counters.bad_frame, frame_counters.overlong,
                               duplicates, uart_rx_overflows()};
    ok();
    for (uint8_t k = 0; k < sizeof values / sizeof values[0]; k++) {
        body_str(&answer, " ");
        body_u32(&answer, values[k]);
    }
}

static void execute(const fields_t *f, uint32_t now) {
    const char *cmd = f->field[1];
    if (strcmp(cmd, "PING") == 0) cmd_ping(f);
    else if (strcmp(cmd, "SET") == 0) cmd_output(f, OUT_DIGITAL);
    else if (strcmp(cmd, "PWM") == 0) cmd_output(f, OUT_PWM);
    else if (strcmp(cmd, "STEP") == 0) cmd_output(f, OUT_STEPPER);
    else if (strcmp(cmd, "READ") == 0) cmd_read(f);
    else if (strcmp(cmd, "PERIOD") == 0) cmd_period(f, now);
    else if (strcmp(cmd, "STATUS") == 0) cmd_status(f, now);
    else if (strcmp(cmd, "STATS") == 0) cmd_stats(f);
    else err("unknown_command", cmd);
}

void commands_handle(char *body, uint32_t now) {
    fields_t f;
    uint32_t seq;
    if (!split(body, &f) || f.count < 2 || !parse_u32(f.field[0], 255, &seq) || seq == 0) {
        frame_counters.bad_frame++; /* not a request: never acted on, never answered */
        return;
    }
    host_seen = 1;
    if ((uint8_t)seq == last_seq) {
        duplicates++;
        frame_send(answer.buf);
        return;
    }
    executed++; /* this request included: a PING answers with itself counted */
    body_clear(&answer);
    body_u32(&answer, seq);
    body_str(&answer, " ");
    execute(&f, now);
    last_seq = (uint8_t)seq;
    frame_send(answer.buf);
}
