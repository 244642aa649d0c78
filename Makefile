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
CFLAGS := -std=c11 -O2 -g -D_GNU_SOURCE -pthread $(WARN) $(SAN_FLAGS) -Iinclude -Ivmm -MMD -MP
LDFLAGS := -pthread $(SAN_FLAGS)
LIBS := -ljansson -lzstd -lz -luring

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

# Code that runs in ring 0 must not use SSE: this project's KVM emulates
# ring-0 code and its emulator rejects vector instructions.
GUEST_RING0 := kernel console libc
$(B)/guest/%.c.o: guest/%.c
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_CFLAGS) $(if $(filter $*,$(GUEST_RING0)),-mgeneral-regs-only) -c $< -o $@

# QEMU's multiboot loader takes only ELF32: link as x86-64, then rewrap.
$(B)/guest/guest.elf: $(GUEST_OBJS) guest/guest.ld
	ld -m elf_x86_64 -nostdlib -static -T guest/guest.ld -o $(B)/guest/guest64.elf $(GUEST_OBJS)
	objcopy -O elf32-i386 $(B)/guest/guest64.elf $@

.PHONY: all guest
guest: $(B)/guest/guest.elf

# ---------------------------------------------------------------- libtern
LIB_SRCS := $(wildcard lib/*.c lib/*/*.c)
LIB_OBJS := $(patsubst %.c,$(B)/%.o,$(LIB_SRCS))

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(B)/libtern.a: $(LIB_OBJS)
	rm -f $@
	ar rcs $@ $^

# ---------------------------------------------------------------- the VMM
# Everything but main.c goes into an archive that tests link too.
VMM_SRCS := $(filter-out vmm/main.c,$(wildcard vmm/*.c vmm/*/*.c))
VMM_OBJS := $(patsubst %.c,$(B)/%.o,$(VMM_SRCS)) $(B)/vmm/machine/builtin_guest.o

$(B)/vmm/machine/builtin_guest.o: vmm/machine/builtin_guest.S $(B)/guest/guest.elf
	@mkdir -p $(dir $@)
	$(CC) -c -DGUEST_ELF='"$(B)/guest/guest.elf"' $< -o $@

$(B)/libvmm.a: $(VMM_OBJS)
	rm -f $@
	ar rcs $@ $^

$(B)/tern: $(B)/vmm/main.o $(B)/libvmm.a $(B)/libtern.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# A tern whose live-update state format is newer than this one's, so tests
# can show an update to a binary that cannot load the state never loses
# the guest.  (Its cpr_blob object comes first and wins over the archive's.)
$(B)/vmm/cpr/cpr_blob_next.o: vmm/cpr/cpr_blob.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DCPR_FORMAT_VERSION=99 -DCPR_FORMAT_MIN=99 -c $< -o $@

$(B)/tern-cpr-next: $(B)/vmm/main.o $(B)/vmm/cpr/cpr_blob_next.o $(B)/libvmm.a $(B)/libtern.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# Terns that crash or hang right after taking in a cpr-exec's state, for
# tests that the guest survives them (their fault point wins likewise).
$(B)/vmm/cpr/cpr_fault_%.o: vmm/cpr/cpr_fault.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DCPR_FAULT_$(shell echo $* | tr a-z A-Z) -c $< -o $@

$(B)/tern-cpr-crash $(B)/tern-cpr-hang: $(B)/tern-cpr-%: $(B)/vmm/main.o $(B)/vmm/cpr/cpr_fault_%.o \
		$(B)/libvmm.a $(B)/libtern.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# ---------------------------------------------------------------- tools
IMG_SRCS := $(wildcard tools/tern-img/*.c)
IMG_OBJS := $(patsubst %.c,$(B)/%.o,$(IMG_SRCS))
$(B)/tern-img: $(IMG_OBJS) $(B)/libtern.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# The description of every state tern saves (vmm/machine/vm_state_describe.h), linked
# with all of libvmm so that every VM_STATE_TYPE is in it.
WHOLE_VMM = -Wl,--whole-archive $(B)/libvmm.a -Wl,--no-whole-archive
$(B)/tern-vmstate-describe: $(B)/tools/vmstate-describe/main.o $(B)/libvmm.a $(B)/libtern.a
	$(CC) $(LDFLAGS) -o $@ $< $(WHOLE_VMM) $(B)/libtern.a $(LIBS)

# tests/vmstate.desc, regenerated: after a description changed (and, if its
# wire form did, its version), so that tests/test_vmstate_desc passes again.
.PHONY: vmstate-desc
vmstate-desc: $(B)/tern-vmstate-describe
	$(B)/tern-vmstate-describe tests/vmstate.desc

# ---------------------------------------------------------------- tests
HARNESS_SRCS := $(wildcard harness/*.c)
HARNESS_OBJS := $(patsubst %.c,$(B)/%.o,$(HARNESS_SRCS))
TEST_SRCS := $(wildcard tests/test_*.c)
TESTS := $(patsubst tests/%.c,$(B)/tests/%,$(TEST_SRCS))
# tests/*.c that are not programs: what several test programs share.
TEST_SUPPORT_OBJS := $(patsubst %.c,$(B)/%.o,$(filter-out $(TEST_SRCS),$(wildcard tests/*.c)))

$(B)/tests/%: $(B)/tests/%.o $(TEST_SUPPORT_OBJS) $(HARNESS_OBJS) $(B)/libvmm.a $(B)/libtern.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) -lcmocka

# The field macros' compile-time checks are tested by compiling with the
# compiler that builds tern.
# It compares the description of every state type with tests/vmstate.desc:
# all of libvmm, as tern-vmstate-describe links it.
$(B)/tests/test_vmstate_desc: $(B)/tests/test_vmstate_desc.o $(B)/libvmm.a $(B)/libtern.a
	$(CC) $(LDFLAGS) -o $@ $< $(WHOLE_VMM) $(B)/libtern.a $(LIBS) -lcmocka

$(B)/tests/test_vmstate_macros.o: CFLAGS += -DTERN_CC='"$(CC)"' -DTERN_INCLUDE_DIR='"$(abspath include)"'

# ---------------------------------------------------------------- benchmarks
# bench/NAME.c is a program; bench/baselines/ holds the baselines they
# measure tern against (never part of libtern).
BENCH_SRCS := $(wildcard bench/*.c)
BENCHES := $(patsubst bench/%.c,$(B)/bench/%,$(BENCH_SRCS))
BASELINE_OBJS := $(patsubst %.c,$(B)/%.o,$(wildcard bench/baselines/*.c))

$(B)/bench/%: $(B)/bench/%.o $(BASELINE_OBJS) $(HARNESS_OBJS) $(B)/libvmm.a $(B)/libtern.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) -lm

# Counts syncs and bytes written by the programs bench/qcow2 runs.
$(B)/bench/iocount.so: bench/preload/iocount.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O2 -D_GNU_SOURCE $(WARN) -fPIC -shared -o $@ $< -ldl
$(B)/bench/qcow2: | $(B)/bench/iocount.so $(B)/tern-img

# Only bench/fdstore uses GLib (its GHashTable is the baseline there).
GLIB_CFLAGS := $(shell pkg-config --cflags glib-2.0 2>/dev/null)
GLIB_LIBS := $(shell pkg-config --libs glib-2.0 2>/dev/null)
$(B)/bench/baselines/glib/%.o: CFLAGS += $(GLIB_CFLAGS)
$(B)/bench/fdstore: $(B)/bench/baselines/glib/cpr_fd_ghash.o
$(B)/bench/fdstore: LIBS += $(GLIB_LIBS)

# ---------------------------------------------------------------- fuzzers
# libFuzzer targets, built with clang from the sources they exercise.
FUZZ_CC := clang
FUZZ_FLAGS := -std=c11 -g -O1 -D_GNU_SOURCE -Iinclude -Ivmm -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=all
# Each target: its file, libtern, and what else it exercises.
FUZZ_EXTRA_qmp := vmm/qmp/qmp.c vmm/qmp/qmp_server.c vmm/qmp/qmp_trace.c vmm/qmp/migration_params_qmp.c \
	vmm/qmp/unix_listen.c vmm/qmp/qmp_framer.c vmm/loop.c vmm/cpr/kept_fds.c vmm/machine/vm_state.c
# The targets that load migration streams and live-update states decode
# every section with its registered state type (fuzz/decode_section.h):
# they link every type, so all of the VMM but main.c and run.c (which
# embeds the built-in guest).
FUZZ_VMM := $(filter-out vmm/run.c,$(VMM_SRCS))
FUZZ_STATE := fuzz/decode_section.c $(FUZZ_VMM)
FUZZ_EXTRA_stream := harness/memio.c harness/frames.c $(FUZZ_STATE)
FUZZ_EXTRA_cpr_state := $(FUZZ_STATE)
FUZZERS := $(patsubst fuzz/%.c,build-fuzz/%,$(wildcard fuzz/fuzz_*.c))

LIB_HDRS := $(wildcard include/tern/*.h lib/*.h lib/*/*.h)
build-fuzz/fuzz_%: fuzz/fuzz_%.c $(LIB_SRCS) $(LIB_HDRS) $(wildcard vmm/*.[ch] vmm/*/*.[ch] harness/*.c \
		fuzz/decode_section.[ch])
	@mkdir -p build-fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(LIB_SRCS) $(FUZZ_EXTRA_$*) -ljansson -lzstd -lz -luring -lpthread

# Seeds for fuzz_stream and fuzz_cpr_state, generated rather than committed
# (fuzz/run runs it): sections of every state type.
build-fuzz/stream_seeds: fuzz/stream_seeds.c $(LIB_SRCS) $(LIB_HDRS) $(wildcard vmm/*.[ch] vmm/*/*.[ch] harness/*.c)
	@mkdir -p build-fuzz
	$(FUZZ_CC) -std=c11 -O1 -g -D_GNU_SOURCE -Iinclude -Ivmm -o $@ $< $(LIB_SRCS) \
		harness/memio.c harness/frames.c $(FUZZ_VMM) -ljansson -lzstd -lz -luring -lpthread
.PHONY: fuzz
fuzz: $(FUZZERS) build-fuzz/stream_seeds

# ---------------------------------------------------------------- targets
.PHONY: all check tern tern-img tests bench
tern-img: $(B)/tern-img
all: $(B)/tern $(B)/tern-vmstate-describe $(B)/tern-cpr-next $(B)/tern-cpr-crash $(B)/tern-cpr-hang $(B)/tern-img $(B)/guest/guest.elf $(TESTS) $(BENCHES)
tern: $(B)/tern
tests: $(TESTS)
bench: $(BENCHES)

# TERN_TESTS=name,name selects test programs; see tests/run.
check: all
	TERN_BUILD=$(B) tests/run

ALL_OBJS := $(LIB_OBJS) $(VMM_OBJS) $(B)/vmm/main.o $(IMG_OBJS) $(B)/tools/vmstate-describe/main.o $(HARNESS_OBJS) $(TEST_SUPPORT_OBJS) $(BASELINE_OBJS) \
	$(TESTS:%=%.o) $(BENCHES:%=%.o)
-include $(GUEST_OBJS:.o=.d) $(ALL_OBJS:.o=.d)
.DEFAULT_GOAL := all
