/* Requests from the host (PROTOCOL.md): parse, remember the last answer, execute once. */
#ifndef COMMANDS_H
#define COMMANDS_H
#include <stdint.h>

void commands_init(void);
/* Handle one frame body with a good CRC (modified in place). */
void commands_handle(char *body, uint32_t now);
/* True once any valid request arrived since boot (HELLO repeats until then). */
uint8_t commands_host_seen(void);
#endif
