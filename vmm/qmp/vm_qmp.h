/* The VM's QMP commands and events. */
#ifndef VMM_VM_QMP_H
#define VMM_VM_QMP_H

#include "migration/dirty_rate.h"
#include "migration/vm_migration.h"
#include "qmp/qmp.h"
#include "machine/vm.h"

/* The caller sets vm and mig; vm_qmp_register fills in the rest. */
struct vm_qmp {
	struct vm *vm;
	struct vm_migration *mig; /* dirty tracking is the migration's while it runs */
	struct qmp_server *server;
	struct loop *loop;        /* the server's */
	struct dirty_rate rate;
};

/* The VM's commands (with the memory map's, memslots_qmp.h) and its STOP,
 * RESUME and SHUTDOWN events; see qmp.h for the shape.  Once it succeeded,
 * vm_qmp_destroy undoes it. */
int vm_qmp_register(struct qmp_server *s, struct vm_qmp *q);
void vm_qmp_destroy(struct vm_qmp *q);
/* The SHUTDOWN event for how the VM ended. */
void vm_qmp_shutdown_event(struct vm_qmp *q);

#endif
