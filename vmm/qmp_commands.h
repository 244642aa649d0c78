/* The VM's QMP commands and events. */
#ifndef VMM_QMP_COMMANDS_H
#define VMM_QMP_COMMANDS_H

#include "qmp.h"
#include "vm.h"

struct vm_qmp {
	struct vm *vm;
	struct qmp_server *server;
};

int vm_qmp_register(struct vm_qmp *q, struct vm *vm, struct qmp_server *server);
/* The SHUTDOWN event for how the VM ended. */
void vm_qmp_shutdown_event(struct vm_qmp *q);

#endif
