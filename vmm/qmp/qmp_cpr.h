/* QMP commands about live-update state (x-query-fdstore, x-query-ioeventfd-bank). */
#ifndef VMM_QMP_CPR_H
#define VMM_QMP_CPR_H

#include "runner.h"

int cpr_qmp_register(struct runner *r);

#endif
