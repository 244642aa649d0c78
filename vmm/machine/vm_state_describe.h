/*
 * tests/vmstate.desc: every state this tern saves, described in a stable
 * text (the CPR header, then each registered state type by name), so that
 * a change to any wire form is seen and versioned on purpose, as QEMU's
 * vmstate-static-checker does.  Written by build/tern-vmstate-describe
 * (`make vmstate-desc`); tests/test_vmstate_desc compares it with the
 * build's (tern_vmstate_desc_compare).  Only the types linked into the
 * program are described: link all of libvmm (--whole-archive).
 */
#ifndef VMM_VM_STATE_DESCRIBE_H
#define VMM_VM_STATE_DESCRIBE_H

#include "tern/error.h"
#include "tern/vmstate.h"

/* Append the whole file.  0, or -errno with what is wrong (a description
 * that tern_vmstate_desc_check refuses, two types of one name). */
int vm_state_describe(struct tern_buf *out, struct tern_error *err);

#endif
