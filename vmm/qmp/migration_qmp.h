/* QMP commands and the MIGRATION event for a VM's migrations. */
#ifndef VMM_MIGRATION_QMP_H
#define VMM_MIGRATION_QMP_H

#include "migration/vm_migration.h"
#include "qmp/qmp.h"

/* migrate, migrate-incoming, the capabilities and parameters, and the
 * MIGRATION event, for m's migrations; see qmp.h for the shape. */
int migration_qmp_register(struct qmp_server *s, struct vm_migration *m);

#endif
