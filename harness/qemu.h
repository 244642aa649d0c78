/* Starting QEMU as a baseline on whatever x86-64 KVM host this is. */
#ifndef HARNESS_QEMU_H
#define HARNESS_QEMU_H

/* The first -cpu model QEMU with KVM starts with here: "host", then
 * "host,-arch-capabilities" (QEMU 7.2's -cpu host aborts on AMD hosts that
 * do not take IA32_ARCH_CAPABILITIES: "failed to set MSR 0x10a"), "max",
 * "qemu64".  Probed once (about a second per model tried); NULL if none
 * starts.  Benchmarks print it beside their QEMU figures. */
const char *harness_qemu_cpu(void);

#endif
