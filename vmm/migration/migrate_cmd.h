/* `tern migrate` and `tern qmp`: QMP clients for a running VM. */
#ifndef VMM_MIGRATE_CMD_H
#define VMM_MIGRATE_CMD_H

extern const char migrate_usage[];

/* argv[0] is the command's name; the return value is the exit status. */
int migrate_main(int argc, char **argv);
int qmp_main(int argc, char **argv);

#endif
