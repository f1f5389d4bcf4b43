/* A pseudo-terminal in raw mode standing for the board's USB serial port. */
#ifndef RIG_PTY_H
#define RIG_PTY_H
#include <stddef.h>

typedef struct {
    int master;    /* non-blocking; the rig reads and writes here */
    int slave;     /* kept open so the master never sees a hangup while no host has it open */
    char name[64]; /* /dev/pts/N, for the host */
} rig_pty_t;

/* Returns 0, or -1 with errno set. */
int rig_pty_open(rig_pty_t *p);
void rig_pty_close(rig_pty_t *p);
#endif
