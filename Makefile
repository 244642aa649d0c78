# tern: one build for libtern, the tern VMM, the built-in guest, tools,
# tests, benchmarks and fuzzers.
#
#   make                 build everything into build/
#   make check           build and run the test suite
#   make SANITIZE=1 ...  the same with AddressSanitizer + UBSan, in build-asan/
#   make fuzz            build the libFuzzer targets (clang) into build-fuzz/

SANITIZE ?= 0
ifeq ($(SANITIZE),1)
B ?= build-asan
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
else
B ?= build
SAN_FLAGS :=
endif

CC ?= gcc
WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wpointer-arith -Wvla -Wformat=2
CFLAGS := -std=c11 -O2 -g -D_GNU_SOURCE -pthread $(WARN) $(SAN_FLAGS) -Iinclude -MMD -MP
LDFLAGS := -pthread $(SAN_FLAGS)
LIBS := -ljansson

# ---------------------------------------------------------------- guest
GUEST_CC := gcc
GUEST_CFLAGS := -std=c11 -O2 -g -ffreestanding -fno-builtin -fno-tree-loop-distribute-patterns \
	-fno-pic -fno-pie -mno-red-zone -fno-stack-protector -fno-asynchronous-unwind-tables \
	-fcf-protection=none -nostdinc -isystem $(shell $(GUEST_CC) -print-file-name=include) \
	$(WARN) -MMD -MP
GUEST_SRCS := guest/boot.S guest/kernel.c guest/console.c guest/libc.c guest/params.c \
	guest/pattern.c guest/timer.c guest/workload.c guest/verify.c guest/commands.c guest/main.c
GUEST_OBJS := $(patsubst guest/%,$(B)/guest/%.o,$(GUEST_SRCS))

$(B)/guest/%.S.o: guest/%.S
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_CFLAGS) -c $< -o $@

$(B)/guest/%.c.o: guest/%.c
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_CFLAGS) -c $< -o $@

# QEMU's multiboot loader takes only ELF32: link as x86-64, then rewrap.
$(B)/guest/guest.elf: $(GUEST_OBJS) guest/guest.ld
	ld -m elf_x86_64 -nostdlib -static -T guest/guest.ld -o $(B)/guest/guest64.elf $(GUEST_OBJS)
	objcopy -O elf32-i386 $(B)/guest/guest64.elf $@

.PHONY: all guest
all: guest
guest: $(B)/guest/guest.elf

-include $(GUEST_OBJS:.o=.d)
