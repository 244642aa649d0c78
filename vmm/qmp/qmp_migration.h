/* QMP commands and the MIGRATION event for a VM's migrations. */
#ifndef VMM_QMP_MIGRATION_H
#define VMM_QMP_MIGRATION_H

#include "migration/migration.h"
#include "qmp/qmp.h"

int migration_qmp_register(struct vm_migration *m, struct qmp_server *server);

#endif
