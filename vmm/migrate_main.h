/* `tern migrate`: a QMP client that migrates a running VM. */
#ifndef VMM_MIGRATE_MAIN_H
#define VMM_MIGRATE_MAIN_H

extern const char migrate_usage[];

/* argv[0] is the command's name; the return value is the exit status. */
int migrate_main(int argc, char **argv);

#endif
