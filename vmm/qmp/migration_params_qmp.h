/* QMP's migration capabilities and parameters (migration_params_qmp.c). */
#ifndef VMM_MIGRATION_PARAMS_QMP_H
#define VMM_MIGRATION_PARAMS_QMP_H

#include "migration/vm_migration.h"
#include "qmp/qmp.h"

/* migrate-set-capabilities, query-migrate-capabilities,
 * migrate-set-parameters, query-migrate-parameters for m (its params,
 * events, mode, cpr settings and stored values); migration_qmp_register
 * calls it. */
int migration_params_qmp_register(struct qmp_server *s, struct vm_migration *m);

#endif
