/* libFuzzer target: a live-update state from an untrusted source (the
 * preamble, the vmstate header with its fd-store hash table, sections).
 * The fuzzer's input follows a valid preamble whose length and checksum
 * are fixed up, so it reaches the parsers behind the checksum. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpr/cpr_blob.h"
#include "tern/crc32c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cpr_blob_in in;
	struct tern_error err;
	/* As is: the magic, version and checksum checks. */
	if (cpr_blob_parse(data, size, &in, &err) == 0)
		cpr_blob_in_free(&in);
	/* Behind a good preamble: everything after it. */
	uint8_t *blob = malloc(24 + size);
	if (blob == NULL)
		return 0;
	memcpy(blob, "TERNCPR", 8);
	uint32_t version = CPR_FORMAT_VERSION, crc = tern_crc32c(0, data, size);
	uint64_t body = size;
	memcpy(blob + 8, &version, 4);
	memcpy(blob + 12, &crc, 4);
	memcpy(blob + 16, &body, 8);
	memcpy(blob + 24, data, size);
	if (cpr_blob_parse(blob, 24 + size, &in, &err) == 0)
		cpr_blob_in_free(&in);
	free(blob);
	return 0;
}
