/* The VM's QMP commands and events. */
#ifndef VMM_QMP_COMMANDS_H
#define VMM_QMP_COMMANDS_H

#include "migration/dirty_rate.h"
#include "migration/migration.h"
#include "qmp/qmp.h"
#include "machine/vm.h"

struct vm_qmp {
	struct vm *vm;
	struct qmp_server *server;
	struct loop *loop;
	struct vm_migration *mig; /* dirty tracking is the migration's while it runs */
	struct dirty_rate rate;
};

int vm_qmp_register(struct vm_qmp *q, struct vm *vm, struct qmp_server *server,
		    struct loop *loop, struct vm_migration *mig);
void vm_qmp_destroy(struct vm_qmp *q);
/* The SHUTDOWN event for how the VM ended. */
void vm_qmp_shutdown_event(struct vm_qmp *q);

#endif
