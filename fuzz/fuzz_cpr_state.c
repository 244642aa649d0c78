/* libFuzzer target: a live-update state from an untrusted source (the
 * preamble, the vmstate header with its fd-store hash table, sections).
 * The fuzzer's input follows a valid preamble whose length and checksum
 * are fixed up, so it reaches the parsers behind the checksum.  Every
 * section of a state that parses is then decoded by the registered state
 * type of its name, as the new tern's registry would before handing it
 * to its holder (fuzz/decode_section.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpr/cpr_blob.h"
#include "decode_section.h"
#include "tern/crc32c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void parse(const uint8_t *blob, size_t len)
{
	struct cpr_blob_in in;
	struct tern_error err;
	if (cpr_blob_parse(blob, len, &in, &err) != 0)
		return;
	for (unsigned i = 0; i < in.sections; i++)
		fuzz_decode_section(in.section[i].name, in.section[i].data, in.section[i].len, &err);
	cpr_blob_in_free(&in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* As is: the magic, version and checksum checks. */
	parse(data, size);
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
	parse(blob, 24 + size);
	free(blob);
	return 0;
}
