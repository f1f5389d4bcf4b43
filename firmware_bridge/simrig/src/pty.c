#define _GNU_SOURCE
#include "pty.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

static int make_raw(int fd) {
    struct termios t;
    if (tcgetattr(fd, &t) < 0) return -1;
    /* No echo, no line discipline: bytes the board sends must never come back to it. */
    cfmakeraw(&t);
    cfsetispeed(&t, B115200);
    cfsetospeed(&t, B115200);
    return tcsetattr(fd, TCSANOW, &t);
}

int rig_pty_open(rig_pty_t *p) {
    p->master = posix_openpt(O_RDWR | O_NOCTTY);
    if (p->master < 0) return -1;
    if (grantpt(p->master) < 0 || unlockpt(p->master) < 0) goto fail;
    if (ptsname_r(p->master, p->name, sizeof p->name) != 0) goto fail;
    p->slave = open(p->name, O_RDWR | O_NOCTTY);
    if (p->slave < 0) goto fail;
    if (make_raw(p->slave) < 0) goto fail;
    int flags = fcntl(p->master, F_GETFL);
    if (flags < 0 || fcntl(p->master, F_SETFL, flags | O_NONBLOCK) < 0) goto fail;
    return 0;
fail:
    close(p->master);
    return -1;
}

void rig_pty_close(rig_pty_t *p) {
    close(p->master);
    close(p->slave);
}
