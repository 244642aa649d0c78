/* The "machine" state: the VM's shape (see vm_shape.c). */
#ifndef VMM_VM_SHAPE_H
#define VMM_VM_SHAPE_H

#include "machine/vm_state.h"

extern const struct vm_state_type machine_shape_type;

#endif
