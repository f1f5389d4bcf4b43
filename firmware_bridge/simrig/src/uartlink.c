#include "uartlink.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "avr_uart.h"
#include "sim_io.h"
#include "sim_irq.h"
#include "sim_time.h"

#define IN_SIZE 65536
#define OUT_SIZE 65536

static avr_t *avr;
static int fd;
static avr_irq_t *uart_in;
static uint8_t in_buf[IN_SIZE];
static size_t in_head, in_len;
static uint8_t out_buf[OUT_SIZE];
static size_t out_len;
static int xoff;
static int armed;
static avr_cycle_count_t next_rx;
static unsigned long dropped;

/* ATmega328P data-space addresses of the USART0 baud registers. */
enum { UCSR0A_ = 0xC0, UBRR0L_ = 0xC4, UBRR0H_ = 0xC5 };

static avr_cycle_count_t cycles_per_byte(void) {
    unsigned ubrr = avr->data[UBRR0L_] | ((avr->data[UBRR0H_] & 0x0F) << 8);
    unsigned divisor = (avr->data[UCSR0A_] & 0x02) ? 8 : 16; /* U2X0 */
    /* start + 8 data + stop = 10 bit times of (divisor * (UBRR + 1)) cycles */
    return (avr_cycle_count_t)10 * divisor * (ubrr + 1);
}

static avr_cycle_count_t feed(struct avr_t *a, avr_cycle_count_t when, void *param) {
    (void)a;
    (void)param;
    if (xoff || in_len == 0) {
        armed = 0;
        return 0;
    }
    uint8_t byte = in_buf[in_head];
    in_head = (in_head + 1) % IN_SIZE;
    in_len--;
    avr_raise_irq(uart_in, byte);
    next_rx = when + cycles_per_byte();
    if (in_len == 0 || xoff) {
        armed = 0;
        return 0;
    }
    return next_rx;
}

static void arm(void) {
    if (armed || xoff || in_len == 0) return;
    armed = 1;
    avr_cycle_count_t delay = next_rx > avr->cycle ? next_rx - avr->cycle : 1;
    avr_cycle_timer_register(avr, delay, feed, NULL);
}

static void on_output(struct avr_irq_t *irq, uint32_t value, void *param) {
    (void)irq;
    (void)param;
    if (out_len < OUT_SIZE) out_buf[out_len++] = (uint8_t)value;
    else dropped++;
}

static void on_xon(struct avr_irq_t *irq, uint32_t value, void *param) {
    (void)irq;
    (void)value;
    (void)param;
    xoff = 0;
    arm();
}

static void on_xoff(struct avr_irq_t *irq, uint32_t value, void *param) {
    (void)irq;
    (void)param;
    xoff = value != 0;
    if (!xoff) arm();
}

void uartlink_attach(avr_t *a, int pty_master) {
    avr = a;
    fd = pty_master;
    uint32_t flags = 0; /* no console echo of the firmware's lines, no sleeping on status polls */
    avr_ioctl(avr, AVR_IOCTL_UART_SET_FLAGS('0'), &flags);
    uart_in = avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_INPUT);
    avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUTPUT), on_output, NULL);
    avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUT_XON), on_xon, NULL);
    avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUT_XOFF), on_xoff, NULL);
}

void uartlink_reset(void) {
    armed = 0;
    xoff = 0;
    next_rx = 0;
}

void uartlink_poll(void) {
    while (in_len < IN_SIZE) {
        uint8_t chunk[4096];
        size_t room = IN_SIZE - in_len;
        ssize_t n = read(fd, chunk, room < sizeof chunk ? room : sizeof chunk);
        if (n <= 0) break; /* EAGAIN, or EIO while no host has the port open */
        for (ssize_t i = 0; i < n; i++) in_buf[(in_head + in_len + (size_t)i) % IN_SIZE] = chunk[i];
        in_len += (size_t)n;
    }
    arm();
    if (out_len) {
        ssize_t n = write(fd, out_buf, out_len);
        if (n > 0) {
            memmove(out_buf, out_buf + n, out_len - (size_t)n);
            out_len -= (size_t)n;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            dropped += out_len;
            out_len = 0;
        }
        if (out_len > OUT_SIZE / 2) {
            /* Nobody reads the port: a real line does not store bytes either. */
            dropped += out_len;
            out_len = 0;
        }
    }
}

unsigned long uartlink_dropped(void) { return dropped; }
