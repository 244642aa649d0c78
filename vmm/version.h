/* tern's version, reported by --version and QMP query-version. */
#ifndef VMM_VERSION_H
#define VMM_VERSION_H

#define TERN_VERSION_MAJOR 0
#define TERN_VERSION_MINOR 1
#define TERN_VERSION_MICRO 0
#define TERN_VERSION "0.1.0"

#endif
