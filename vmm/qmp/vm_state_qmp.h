/* x-query-vm-state: the state registry's entries and a digest of each. */
#ifndef VMM_VM_STATE_QMP_H
#define VMM_VM_STATE_QMP_H

#include "machine/vm.h"
#include "qmp/qmp.h"

int vm_state_qmp_register(struct qmp_server *server, struct vm *vm);

#endif
