/* QMP commands for the guest memory map (memslot-add and friends). */
#ifndef VMM_MEMSLOTS_QMP_H
#define VMM_MEMSLOTS_QMP_H

struct qmp_server;
struct vm_qmp;

/* memslot-add, -del, -move, -set-read-only and query-memslots, on the VM
 * of q (vm_qmp_register calls it); see qmp.h for the shape. */
int memslots_qmp_register(struct qmp_server *s, struct vm_qmp *q);

#endif
