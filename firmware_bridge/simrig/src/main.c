/*
 * simrig ELF: run the board firmware in simavr, throttled to the wall clock, with UART0 on a
 * pseudo-terminal. Prints `pty /dev/pts/N`, then answers one line per command on stdin:
 *   adc CH MILLIVOLTS   -> adc CH MILLIVOLTS          (CH: 0..5 or A0..A5)
 *   pin NAME            -> pin NAME LEVEL CHANGED_AT_US
 *   pins                -> pins D2=L D3=L D4=L D5=L D6=L D7=L D8=L
 *   pwm D3              -> pwm D3 DUTY                 (0..255)
 *   steps S1            -> steps S1 COUNT DIR INTERVAL_US
 *   time                -> time US                     (simulated microseconds)
 *   reset               -> reset US                    (the firmware boots again)
 *   hang                -> hang US                     (the firmware stops in a loop, interrupts off)
 *   quit                -> bye
 * A bad command answers `error ...`. End of input quits too.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "probes.h"
#include "pty.h"
#include "sim_avr.h"
#include "sim_elf.h"
#include "uartlink.h"

#define DEFAULT_MCU "atmega328p"
#define DEFAULT_HZ 16000000u
/* The emulator may fall behind the wall clock on a busy machine; it never runs ahead of it. Debt
   beyond this is forgiven rather than paid back in a burst. */
#define MAX_LAG_NS 20000000LL
/* Simulated time run between two looks at the pty and stdin. */
#define SLICE_NS 200000LL

static avr_t *avr;
static FILE *out; /* the real stdout: simavr prints its own chatter on stdout, sent to stderr */
static void (*core_reset)(avr_t *);
static int was_reset;

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static uint64_t cycles_to_us(avr_cycle_count_t c) { return (uint64_t)c * 1000000u / avr->frequency; }

static void fill_random(uint8_t *p, size_t n) {
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd < 0 || read(fd, p, n) != (ssize_t)n) {
        for (size_t i = 0; i < n; i++) p[i] = (uint8_t)rand();
    }
    if (fd >= 0) close(fd);
}

/* Called inside every avr_reset(), whether the rig asked for it or the AVR's watchdog fired. */
static void on_reset(avr_t *a) {
    if (core_reset) core_reset(a);
    /* A real SRAM powers up with noise; simavr zeroes it, which would make every boot alike. */
    fill_random(a->data + a->ioend + 1, a->ramend - a->ioend);
    was_reset = 1;
}

static void no_sleep(avr_t *a, avr_cycle_count_t howlong) {
    (void)a;
    (void)howlong; /* the main loop keeps time with the wall clock */
}

static void answer(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void answer(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(out, fmt, ap);
    va_end(ap);
    fputc('\n', out);
    fflush(out);
}

static int command(char *line) {
    char word[32] = "", arg[32] = "";
    long value = 0;
    int n = sscanf(line, "%31s %31s %ld", word, arg, &value);
    if (n <= 0) return 1;
    if (strcmp(word, "quit") == 0) {
        answer("bye");
        return 0;
    }
    if (strcmp(word, "time") == 0) {
        answer("time %llu", (unsigned long long)cycles_to_us(avr->cycle));
    } else if (strcmp(word, "reset") == 0) {
        avr_reset(avr);
        avr->state = cpu_Running;
        answer("reset %llu", (unsigned long long)cycles_to_us(avr->cycle));
    } else if (strcmp(word, "hang") == 0) {
        /* A firmware stuck in a loop with interrupts off: `rjmp .-2` in the last flash word, run
           there. Only the AVR's own watchdog gets it out (a reset, a new HELLO). */
        avr_flashaddr_t loop = avr->flashend - 1;
        avr->flash[loop] = 0xFF;
        avr->flash[loop + 1] = 0xCF;
        avr->sreg[S_I] = 0;
        avr->pc = loop;
        avr->state = cpu_Running; /* it may have been asleep: asleep with interrupts off ends simavr */
        answer("hang %llu", (unsigned long long)cycles_to_us(avr->cycle));
    } else if (strcmp(word, "adc") == 0 && n == 3) {
        const char *ch = arg[0] == 'A' ? arg + 1 : arg;
        char *end;
        long c = strtol(ch, &end, 10);
        if (end == ch || *end || c < 0 || c > 5 || value < 0 || value > 5500) {
            answer("error adc wants a channel 0..5 (or A0..A5) and millivolts 0..5500");
        } else {
            probes_adc(avr, (int)c, (uint32_t)value);
            answer("adc A%ld %ld", c, value);
        }
    } else if (strcmp(word, "pin") == 0 && n >= 2) {
        char port;
        int bit;
        if (!probes_pin_by_name(arg, &port, &bit)) {
            answer("error unknown pin %s (D0..D13, A0..A5)", arg);
        } else {
            answer("pin %s %d %llu", arg, probes_level(port, bit),
                   (unsigned long long)cycles_to_us(probes_changed_at(port, bit)));
        }
    } else if (strcmp(word, "pins") == 0) {
        static const char *names[] = {"D2", "D3", "D4", "D5", "D6", "D7", "D8"};
        char buf[128];
        size_t len = 0;
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            char port;
            int bit;
            probes_pin_by_name(names[i], &port, &bit);
            len += (size_t)snprintf(buf + len, sizeof buf - len, " %s=%d", names[i], probes_level(port, bit));
        }
        answer("pins%s", buf);
    } else if (strcmp(word, "pwm") == 0 && strcmp(arg, "D3") == 0) {
        answer("pwm D3 %d", probes_pwm_d3(avr));
    } else if (strcmp(word, "steps") == 0 && strcmp(arg, "S1") == 0) {
        answer("steps S1 %llu %d %llu", (unsigned long long)probes_steps(), probes_level('D', 6),
               (unsigned long long)cycles_to_us(probes_step_interval()));
    } else {
        answer("error unknown command: %s (adc, pin, pins, pwm D3, steps S1, time, reset, hang, quit)", word);
    }
    return 1;
}

/* Reads what stdin has; runs each complete line. Returns 0 to quit. */
static int read_commands(void) {
    static char buf[4096];
    static size_t len;
    ssize_t n = read(STDIN_FILENO, buf + len, sizeof buf - 1 - len);
    if (n == 0) return 0;
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    len += (size_t)n;
    char *start = buf, *nl;
    while ((nl = memchr(start, '\n', len - (size_t)(start - buf)))) {
        *nl = '\0';
        if (!command(start)) return 0;
        start = nl + 1;
    }
    len -= (size_t)(start - buf);
    memmove(buf, start, len);
    if (len == sizeof buf - 1) len = 0; /* a line that long is no command */
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: simrig FIRMWARE.elf\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int real_stdout = dup(STDOUT_FILENO);
    out = fdopen(real_stdout, "w");
    dup2(STDERR_FILENO, STDOUT_FILENO);

    elf_firmware_t fw;
    memset(&fw, 0, sizeof fw);
    if (elf_read_firmware(argv[1], &fw) != 0) {
        fprintf(stderr, "simrig: cannot read the firmware %s (an AVR ELF file built by make -C firmware_bridge/firmware)\n", argv[1]);
        return 1;
    }
    if (!fw.mmcu[0]) strcpy(fw.mmcu, DEFAULT_MCU);
    if (!fw.frequency) fw.frequency = DEFAULT_HZ;
    avr = avr_make_mcu_by_name(fw.mmcu);
    if (!avr) {
        fprintf(stderr, "simrig: simavr does not know the MCU %s\n", fw.mmcu);
        return 1;
    }
    avr_init(avr);
    avr->log = LOG_ERROR;
    avr_load_firmware(avr, &fw);
    avr->vcc = avr->avcc = avr->aref = 5000;
    avr->sleep = no_sleep;
    core_reset = avr->reset;
    avr->reset = on_reset;

    rig_pty_t pty;
    if (rig_pty_open(&pty) < 0) {
        perror("simrig: cannot open a pseudo-terminal");
        return 1;
    }
    probes_attach(avr);
    uartlink_attach(avr, pty.master);
    avr_reset(avr); /* boot with noisy SRAM, like a power-up */
    probes_reset(avr);
    uartlink_reset();
    was_reset = 0;
    fcntl(STDIN_FILENO, F_SETFL, fcntl(STDIN_FILENO, F_GETFL) | O_NONBLOCK);
    answer("pty %s", pty.name);

    const int64_t hz = avr->frequency;
    int64_t base_ns = now_ns();
    avr_cycle_count_t base_cycle = avr->cycle;
    for (;;) {
        int64_t now = now_ns();
        int64_t lag_ns = (now - base_ns) - (int64_t)((avr->cycle - base_cycle) * 1000000000ULL / hz);
        if (lag_ns > MAX_LAG_NS) {
            base_ns += lag_ns - MAX_LAG_NS;
            lag_ns = MAX_LAG_NS;
        }
        if (lag_ns > 0) {
            int64_t slice = lag_ns < SLICE_NS ? lag_ns : SLICE_NS;
            avr_cycle_count_t end = avr->cycle + (avr_cycle_count_t)(slice * hz / 1000000000LL) + 1;
            while (avr->cycle < end) {
                int state = avr_run(avr);
                if (state == cpu_Done) {
                    /* simavr ended the MCU (it slept with interrupts off) and freed its memory. */
                    fprintf(stderr, "simrig: the firmware went to sleep with interrupts off at pc 0x%x\n", avr->pc);
                    return 3;
                }
                if (state == cpu_Crashed) {
                    fprintf(stderr, "simrig: the firmware crashed at pc 0x%x; `reset` boots it again\n", avr->pc);
                    avr->state = cpu_Stopped;
                }
                if (avr->state == cpu_Stopped) {
                    avr->cycle = end; /* a stopped MCU lets time pass */
                    break;
                }
                if (was_reset) {
                    was_reset = 0;
                    probes_reset(avr);
                    uartlink_reset();
                }
            }
        }
        uartlink_poll();
        struct pollfd fds[2] = {{.fd = STDIN_FILENO, .events = POLLIN}, {.fd = pty.master, .events = POLLIN}};
        int64_t ahead_ns = -lag_ns;
        struct timespec wait = {0, 0};
        if (ahead_ns > 0) wait.tv_nsec = ahead_ns < 1000000 ? ahead_ns : 1000000;
        if (ppoll(fds, 2, &wait, NULL) > 0) {
            if (fds[0].revents & (POLLIN | POLLHUP)) {
                if (!read_commands()) break;
            }
        }
    }
    rig_pty_close(&pty);
    return 0;
}
