#!/usr/bin/env python3
"""Capture the live-update (cpr-exec) state a tern writes, then give the guest back.

Used as cpr-exec-command (see make_golden.py):

    migrate-set-parameters {"mode": "cpr-exec",
        "cpr-exec-command": ["/path/to/python3", "capture_cpr_state.py", "OUT"]}
    migrate {"uri": "cpr:"}

tern stops the guest, writes its state into a memfd, starts the guardian
(lib/cprguard.c) and execs this program with TERN_CPR_GUARDIAN=FD naming a
SOCK_SEQPACKET socket to the guardian.  Like a new tern (tern_cpr_guard_fetch)
it sends "STATE"; the guardian answers "STATE" with two fds by SCM_RIGHTS: the
state memfd and the previous tern binary.  The whole memfd is copied to OUT.

It never sends "TAKE": it exits with status 3, so the guardian sees the
process end before anyone took the guest and execs the previous binary with
the state (the fallback); the guest runs on and query-migrate reports the
update failed ("... exited with status 3 before it took the guest").
"""
import os
import socket
import sys


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: capture_cpr_state.py OUT (as cpr-exec-command)\n")
        return 2
    out = sys.argv[1]
    fd = int(os.environ["TERN_CPR_GUARDIAN"])
    sock = socket.socket(fileno=fd)
    sock.settimeout(2.0)
    sock.send(b"STATE")
    msg, fds, _flags, _addr = socket.recv_fds(sock, 16, 2)
    if msg != b"STATE" or len(fds) != 2:
        sys.stderr.write("capture_cpr_state: unexpected answer %r with %d fds\n" % (msg, len(fds)))
        return 4
    state_fd, previous_fd = fds
    size = os.fstat(state_fd).st_size
    blob = b""
    while len(blob) < size:  # pread: the memfd's offset is shared with the guardian
        chunk = os.pread(state_fd, size - len(blob), len(blob))
        if not chunk:
            break
        blob += chunk
    tmp = out + ".part"
    with open(tmp, "wb") as f:
        f.write(blob)
    os.rename(tmp, out)
    os.close(state_fd)
    os.close(previous_fd)
    sys.stderr.write("capture_cpr_state: %d bytes of state to %s; giving the guest back\n"
                     % (len(blob), out))
    sys.stderr.flush()
    return 3  # not a tern: the guardian falls back to the previous binary


if __name__ == "__main__":
    sys.exit(main())
