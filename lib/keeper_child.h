/* What an address-space keeper and a cpr-exec guardian share: both are
 * children in the old address space, known to a new program by name. */
#ifndef LIB_KEEPER_CHILD_H
#define LIB_KEEPER_CHILD_H

#define KEEPER_STACK (64 * 1024)
#define KEEPER_NAME "tern-mm-keeper"

#endif
