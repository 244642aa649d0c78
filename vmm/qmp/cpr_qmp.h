/* QMP commands about live-update state (x-query-fdstore, x-query-ioeventfd-bank). */
#ifndef VMM_CPR_QMP_H
#define VMM_CPR_QMP_H

#include "runner.h"

/* x-query-fdstore and x-query-ioeventfd-bank, on what r carries across a
 * live update; see qmp.h for the shape. */
int cpr_qmp_register(struct qmp_server *s, struct runner *r);

#endif
