/* CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, not reflected, no final XOR; "123456789" -> 0x29B1. */
#ifndef CRC16_H
#define CRC16_H
#include <stdint.h>

#define CRC16_INIT 0xFFFFu
uint16_t crc16_update(uint16_t crc, uint8_t byte);
uint16_t crc16(const char *data, uint8_t len);
#endif
