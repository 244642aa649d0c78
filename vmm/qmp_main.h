/* `tern qmp`: one QMP command on a running VM. */
#ifndef VMM_QMP_MAIN_H
#define VMM_QMP_MAIN_H

/* argv[0] is the command's name; the return value is the exit status. */
int qmp_main(int argc, char **argv);

#endif
