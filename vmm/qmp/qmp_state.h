/* x-query-vm-state: the state registry's entries and a digest of each. */
#ifndef VMM_QMP_STATE_H
#define VMM_QMP_STATE_H

#include "machine/vm.h"
#include "qmp/qmp.h"

int vm_state_qmp_register(struct qmp_server *server, struct vm *vm);

#endif
