/* QMP commands for the guest memory map (memslot-add and friends). */
#ifndef VMM_QMP_MEMSLOTS_H
#define VMM_QMP_MEMSLOTS_H

struct vm_qmp;

int memslots_qmp_register(struct vm_qmp *q);

#endif
