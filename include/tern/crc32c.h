/* CRC-32C (Castagnoli), the integrity check of tern's migration stream:
 * the SSE4.2 instruction where the CPU has it, a table otherwise. */
#ifndef TERN_CRC32C_H
#define TERN_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* crc = tern_crc32c(0, data, len) for a whole buffer, or chained. */
uint32_t tern_crc32c(uint32_t crc, const void *data, size_t len);

#endif
