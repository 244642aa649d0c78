#!/usr/bin/env python3
"""Write tests/golden/*: migration streams and live-update states of this tern.

    nice make -j2 && nice python3 tests/golden/make_golden.py [NAME ...]

Run from the repository root with /dev/kvm.  Each file is written by
build/tern as it is at `git rev-parse HEAD` (recorded in manifest.txt next to
the files, with every command line and QMP command used).  The guest is the
built-in one, at the smallest RAM tern takes (16M), so the files stay small.
Nothing here is needed to run the tests: the files are committed.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GOLDEN = os.path.join(ROOT, "tests", "golden")
TERN = os.path.join(ROOT, "build", "tern")
CAPTURE = os.path.join(GOLDEN, "capture_cpr_state.py")

# The guest: 256 KiB of working set (64 pages) written at random, 2000 page
# writes a second, 3000 of them (1.5 s): migrated in the middle of it.  Its
# checksum at the end is that of an unmigrated run with the same arguments.
GUEST = "workload=random ws=256K writes=3000 rate=2000 seed=7"
# With XBZRLE: 64-byte writes (sparse), so that pages sent again go as deltas.
GUEST_XBZRLE = "workload=sparse ws=256K writes=8000 rate=4000 seed=7"
# Live update: an idle guest, (no end: it runs until QMP quit).
GUEST_IDLE = "workload=idle ws=256K fill=1 seed=7"

log = []  # the manifest: what was run, in order


def note(text):
    log.append(text)
    print(text, flush=True)


class QMP:
    def __init__(self, path, timeout=10.0):
        deadline = time.time() + timeout
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.s.connect(path)
                break
            except OSError:
                self.s.close()
                if time.time() > deadline:
                    raise
                time.sleep(0.02)
        self.f = self.s.makefile("rwb", buffering=0)
        self.read()  # greeting
        self.cmd("qmp_capabilities", quiet=True)

    def read(self):
        line = self.f.readline()
        if not line:
            raise RuntimeError("QMP connection closed")
        return json.loads(line)

    def cmd(self, name, args=None, quiet=False):
        msg = {"execute": name}
        if args is not None:
            msg["arguments"] = args
        if not quiet:
            note("    qmp: " + json.dumps(msg))
        self.f.write((json.dumps(msg) + "\n").encode())
        while True:
            r = self.read()
            if "return" in r:
                return r["return"]
            if "error" in r:
                raise RuntimeError("%s: %s" % (name, r["error"]))

    def close(self):
        self.s.close()


class Tern:
    def __init__(self, args, workdir, name):
        self.qmp_path = os.path.join(workdir, name + ".qmp")
        self.out_path = os.path.join(workdir, name + ".out")
        self.argv = [TERN, "run"] + args + ["--qmp", "unix:" + self.qmp_path]
        note("  $ " + " ".join(quote(a) for a in self.argv))
        self.out = open(self.out_path, "wb")
        self.p = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=self.out,
                                  stderr=subprocess.STDOUT)

    def output(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_for(self, text, timeout=20.0, count=1, alive=True):
        deadline = time.time() + timeout
        while self.output().count(text) < count:
            if (alive and self.p.poll() is not None) or time.time() > deadline:
                raise RuntimeError("no '%s' from tern:\n%s" % (text, self.output()))
            time.sleep(0.01)

    def serial(self, line):
        note("    serial: " + line)
        self.p.stdin.write((line + "\n").encode())
        self.p.stdin.flush()

    def wait(self, timeout=30.0):
        return self.p.wait(timeout)

    def holders(self):
        """The pids that hold this tern's stdin: after a cpr-exec fallback the
        guest runs on in the guardian's pid, not in the one started here."""
        pipe = os.readlink("/proc/self/fd/%d" % self.p.stdin.fileno())
        pids = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                fds = os.listdir("/proc/%s/fd" % pid)
                if any(os.readlink("/proc/%s/fd/%s" % (pid, fd)) == pipe for fd in fds):
                    pids.append(int(pid))
            except OSError:
                pass
        return pids

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        for pid in self.holders():  # a guardian's fallback tern
            os.kill(pid, 9)


def quote(a):
    return a if a and all(c.isalnum() or c in "-_=.,:/+" for c in a) else "'" + a + "'"


def wait_migration(q, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = q.cmd("query-migrate", quiet=True)
        if r.get("status") in ("completed", "failed", "cancelled"):
            return r
        time.sleep(0.02)
    raise RuntimeError("the migration did not end")


def checksum(out, label):
    for line in out.splitlines():
        if ("verify ok (%s)" % label) in line:
            return line.split("checksum=")[1].split()[0]
    return None


def reference_checksum(memory, vcpus, append, workdir):
    """The checksum of a run that is never migrated."""
    p = subprocess.run([TERN, "run", "--memory", memory, "--vcpus", vcpus, "--append", append],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    out = p.stdout.decode()
    if p.returncode != 0 or checksum(out, "end") is None:
        raise RuntimeError("reference run failed:\n" + out)
    return checksum(out, "end")


def doorbell_rings(bank_info):
    """[[doorbell, rings], ...] of the doorbells that rang (x-query-ioeventfd-bank)."""
    return [[d["index"], d["rings"]] for d in bank_info["doorbells"] if d["rings"]]


def save_stream(name, vcpus="1", paused=False, xbzrle=False, bank=0, rings=()):
    """Run a guest, save it with migrate file:, load it into a fresh tern."""
    note("\n%s:" % name)
    work = tempfile.mkdtemp(prefix="tern-golden-")
    path = os.path.join(GOLDEN, name)
    tmp_path = os.path.join(work, name)
    append = GUEST_XBZRLE if xbzrle else GUEST
    args = ["--memory", "16M", "--vcpus", vcpus, "--append", append]
    if bank:
        args += ["--device", "ioeventfd-bank,count=%d" % bank]
    src = Tern(args, work, "src")
    try:
        src.wait_for("tern-guest: start")
        q = QMP(src.qmp_path)
        if xbzrle:
            q.cmd("migrate-set-capabilities",
                  {"capabilities": [{"capability": "xbzrle", "state": True}]})
            q.cmd("migrate-set-parameters", {"xbzrle-cache-size": 1 << 20,
                                             "max-bandwidth": 1 << 20,
                                             "downtime-limit": 20})
        time.sleep(0.3)
        for i, doorbell in enumerate(rings):
            src.serial("poke 0x%x 1" % (0xe0000000 + 8 * doorbell))
            src.wait_for("tern-guest: poke", count=i + 1)
        if rings:
            bank_info = q.cmd("x-query-ioeventfd-bank")
            note("    x-query-ioeventfd-bank: rings=%d %s" % (bank_info["rings"], json.dumps(
                [(d["index"], d["rings"]) for d in bank_info["doorbells"] if d["rings"]])))
        if paused:
            q.cmd("stop")
            time.sleep(0.1)
        q.cmd("migrate", {"uri": "file:" + tmp_path})
        info = wait_migration(q)
        if info["status"] != "completed":
            raise RuntimeError("migration: %s" % json.dumps(info))
        ram = info["ram"]
        note("    completed: transferred=%d duplicate=%d normal=%d dirty-sync-count=%d%s%s" % (
            ram["transferred"], ram["duplicate"], ram["normal"], ram["dirty-sync-count"],
            (" xbzrle-cache.pages=%d" % info["xbzrle-cache"]["pages"])
            if "xbzrle-cache" in info else "",
            (" x-block-delta.pages=%d" % info["x-block-delta"]["pages"])
            if "x-block-delta" in info else ""))
        st = q.cmd("query-status", quiet=True)["status"]
        note("    source status: %s" % st)
        q.cmd("quit")
        q.close()
        src.wait()
    finally:
        src.kill()
    ref = reference_checksum("16M", vcpus, append, work)
    note("    reference checksum (unmigrated run): %s" % ref)
    # The stream loads: the guest finishes on a fresh destination.
    dst_args = ["--memory", "16M", "--vcpus", vcpus]
    if bank:
        dst_args += ["--device", "ioeventfd-bank,count=%d" % bank]
    dst_args += ["--incoming", "file:" + tmp_path]
    note("  load:")
    dst = Tern(dst_args, work, "dst")
    try:
        try:
            q = QMP(dst.qmp_path)
            deadline = time.time() + 20
            while q.cmd("query-status", quiet=True)["status"] == "inmigrate":
                if time.time() > deadline:
                    raise RuntimeError("the destination did not load:\n" + dst.output())
                time.sleep(0.01)
            dinfo = q.cmd("query-migrate", quiet=True)
            note("    destination query-migrate: status=%s" % dinfo.get("status"))
            if bank:
                bank_info = q.cmd("x-query-ioeventfd-bank")
                note("    destination x-query-ioeventfd-bank: rings=%d %s" % (
                    bank_info["rings"], json.dumps(doorbell_rings(bank_info))))
            q.close()
        except (OSError, RuntimeError):
            if dst.p.poll() is None:
                raise
            note("    (the destination finished before QMP could ask it anything)")
        code = dst.wait(60)
    finally:
        dst.kill()
    out = dst.output()
    got = checksum(out, "end")
    if code != 0 or got != ref:
        raise RuntimeError("loading %s: status %d, checksum %s (want %s):\n%s" %
                           (name, code, got, ref, out))
    note("    destination: exit 0, verify ok (end) checksum=%s" % got)
    shutil.copyfile(tmp_path, path)
    note("    %s: %d bytes" % (name, os.path.getsize(path)))
    shutil.rmtree(work)


def save_stream_idle(name, bank=4, rings=(0, 2, 2, 3)):
    """An idle guest (it runs until told to stop, so its destination can be
    asked about its devices at leisure) rings doorbells, is checksummed and
    saved with migrate file:; a fresh tern with the same bank loads it and
    must show the source's rings, then the guest stops there on serial
    "stop" and verifies with the source's checksum."""
    note("\n%s:" % name)
    work = tempfile.mkdtemp(prefix="tern-golden-")
    path = os.path.join(GOLDEN, name)
    tmp_path = os.path.join(work, name)
    device = "ioeventfd-bank,count=%d" % bank
    src = Tern(["--memory", "16M", "--vcpus", "1", "--append", GUEST_IDLE, "--device", device],
               work, "src")
    try:
        src.wait_for("tern-guest: filled")
        q = QMP(src.qmp_path)
        for i, doorbell in enumerate(rings):
            src.serial("poke 0x%x 1" % (0xe0000000 + 8 * doorbell))
            src.wait_for("tern-guest: poke", count=i + 1)
        bank_info = q.cmd("x-query-ioeventfd-bank")
        src_rings = (bank_info["rings"], doorbell_rings(bank_info))
        note("    x-query-ioeventfd-bank: rings=%d %s" % (src_rings[0], json.dumps(src_rings[1])))
        src.serial("verify")
        src.wait_for("verify ok (command)")
        ref = checksum(src.output(), "command")
        note("    source: verify ok (command) checksum=%s" % ref)
        q.cmd("migrate", {"uri": "file:" + tmp_path})
        info = wait_migration(q)
        if info["status"] != "completed":
            raise RuntimeError("migration: %s" % json.dumps(info))
        ram = info["ram"]
        note("    completed: transferred=%d duplicate=%d normal=%d dirty-sync-count=%d" % (
            ram["transferred"], ram["duplicate"], ram["normal"], ram["dirty-sync-count"]))
        note("    source status: %s" % q.cmd("query-status", quiet=True)["status"])
        q.cmd("quit")
        q.close()
        src.wait()
    finally:
        src.kill()
    note("  load:")
    dst = Tern(["--memory", "16M", "--vcpus", "1", "--device", device,
                "--incoming", "file:" + tmp_path], work, "dst")
    try:
        q = QMP(dst.qmp_path)
        deadline = time.time() + 20
        while q.cmd("query-status", quiet=True)["status"] != "running":
            if dst.p.poll() is not None or time.time() > deadline:
                raise RuntimeError("the destination did not load:\n" + dst.output())
            time.sleep(0.01)
        note("    destination query-migrate: status=%s" %
             q.cmd("query-migrate", quiet=True).get("status"))
        bank_info = q.cmd("x-query-ioeventfd-bank")
        dst_rings = (bank_info["rings"], doorbell_rings(bank_info))
        note("    destination x-query-ioeventfd-bank: rings=%d %s" % (dst_rings[0],
                                                                    json.dumps(dst_rings[1])))
        if dst_rings != src_rings:
            raise RuntimeError("the destination's doorbells rang %r, the source's %r" %
                               (dst_rings, src_rings))
        q.close()
        dst.serial("stop")
        code = dst.wait(30)
    finally:
        dst.kill()
    out = dst.output()
    got = checksum(out, "end")
    if code != 0 or got != ref or "tern-guest: start" in out:
        raise RuntimeError("loading %s: status %d, checksum %s (want %s):\n%s" %
                           (name, code, got, ref, out))
    note("    destination: exit 0, no boot, verify ok (end) checksum=%s" % got)
    # Without the bank the destination refuses it.
    p = subprocess.run([TERN, "run", "--memory", "16M", "--vcpus", "1", "--incoming",
                        "file:" + tmp_path], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    note("  $ tern run --memory 16M --vcpus 1 --incoming file:PATH (no bank): status %d: %s" %
         (p.returncode, p.stdout.decode(errors="replace").strip()))
    if p.returncode == 0:
        raise RuntimeError("a destination without the bank took %s" % name)
    shutil.copyfile(tmp_path, path)
    note("    %s: %d bytes" % (name, os.path.getsize(path)))
    shutil.rmtree(work)


def save_cpr(name, bank=0, rings=(), region=False):
    """Run an idle guest, cpr-exec into capture_cpr_state.py, which keeps the
    state and exits; the guardian brings the guest back."""
    note("\n%s:" % name)
    work = tempfile.mkdtemp(prefix="tern-golden-")
    path = os.path.join(GOLDEN, name)
    tmp_path = os.path.join(work, name)
    args = ["--memory", "16M", "--append", GUEST_IDLE]
    if bank:
        args += ["--device", "ioeventfd-bank,count=%d" % bank]
    vm = Tern(args, work, "vm")
    try:
        vm.wait_for("tern-guest: filled")
        q = QMP(vm.qmp_path)
        pokes = 0
        for doorbell in rings:
            vm.serial("poke 0x%x 1" % (0xe0000000 + 8 * doorbell))
            pokes += 1
            vm.wait_for("tern-guest: poke", count=pokes)
        if rings:
            bank_info = q.cmd("x-query-ioeventfd-bank")
            note("    x-query-ioeventfd-bank: rings=%d %s" % (bank_info["rings"], json.dumps(
                [(d["index"], d["rings"]) for d in bank_info["doorbells"] if d["rings"]])))
        if region:
            slot = q.cmd("memslot-add", {"addr": 0x40000000, "size": 2 << 20})["slot"]
            vm.serial("poke 0x40000008 0x1122334455667788")
            pokes += 1
            vm.wait_for("tern-guest: poke", count=pokes)
            q.cmd("memslot-set-read-only", {"slot": slot, "read-only": True})
        q.cmd("migrate-set-parameters", {"mode": "cpr-exec", "cpr-exec-command": [
            sys.executable, CAPTURE, tmp_path]})
        q.cmd("migrate", {"uri": "cpr:"})
        q.close()
        # The guardian falls back to the previous binary: the same QMP socket.
        deadline = time.time() + 20
        while True:
            try:
                q = QMP(vm.qmp_path, timeout=2)
                info = q.cmd("query-migrate", quiet=True)
                if info.get("status") == "failed":
                    break
                q.close()
            except (OSError, RuntimeError):
                pass
            if time.time() > deadline:
                raise RuntimeError("the guest did not come back:\n" + vm.output())
            time.sleep(0.05)
        note("    query-migrate: status=%s error-desc=%s" % (info["status"],
                                                             info.get("error-desc")))
        if not os.path.exists(tmp_path):
            raise RuntimeError("no state captured:\n" + vm.output())
        # The guest runs again, and answers.
        code = vm.p.wait(10)
        note("    the tern started above ended with status %d; the guest runs on in pid(s) %s "
             "(the guardian's fallback)" % (code, vm.holders()))
        vm.serial("verify")
        vm.wait_for("verify ok (command)", alive=False)
        note("    after the fallback: %s" % q.cmd("query-status", quiet=True)["status"] +
             ", guest: verify ok (command)")
        if rings:
            bank_info = q.cmd("x-query-ioeventfd-bank", quiet=True)
            note("    after the fallback x-query-ioeventfd-bank: rings=%d" % bank_info["rings"])
        if region:
            vm.serial("peek 0x40000008")
            vm.wait_for("peek 0x40000008 = 0x1122334455667788", alive=False)
            note("    after the fallback: peek 0x40000008 = 0x1122334455667788")
        holders = vm.holders()
        q.cmd("quit")
        q.close()
        deadline = time.time() + 10
        while vm.holders() and time.time() < deadline:
            time.sleep(0.05)
        note("    quit: pid(s) %s ended: %s" % (holders, not vm.holders()))
    finally:
        vm.kill()
    shutil.copyfile(tmp_path, path)
    note("    %s: %d bytes" % (name, os.path.getsize(path)))
    shutil.rmtree(work)


JOBS = {
    "mig-1vcpu.tmf": lambda n: save_stream(n),
    "mig-2vcpu.tmf": lambda n: save_stream(n, vcpus="2"),
    "mig-paused.tmf": lambda n: save_stream(n, paused=True),
    "mig-xbzrle.tmf": lambda n: save_stream(n, xbzrle=True),
    "mig-ioeventfd-bank.tmf": lambda n: save_stream(n, bank=4, rings=(0, 2, 2, 3)),
    "cpr-plain.bin": lambda n: save_cpr(n),
    "cpr-ioeventfd-bank.bin": lambda n: save_cpr(n, bank=4, rings=(0, 2, 2, 3)),
    "cpr-memslot.bin": lambda n: save_cpr(n, region=True),
    # Written by the tern with the state registry (its migration carries the
    # ioeventfd-bank's ring counts; live-update state format 2), for the
    # releases after it (README.txt).
    "mig2-ioeventfd-bank.tmf": lambda n: save_stream_idle(n, bank=4, rings=(0, 2, 2, 3)),
    "cpr2-plain.bin": lambda n: save_cpr(n),
    "cpr2-ioeventfd-bank.bin": lambda n: save_cpr(n, bank=4, rings=(0, 2, 2, 3)),
}


def main():
    os.chdir(ROOT)
    head = subprocess.run(["git", "rev-parse", "HEAD"], stdout=subprocess.PIPE,
                          check=True).stdout.decode().strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "vmm", "lib", "guest",
                            "include", "Makefile"], stdout=subprocess.PIPE,
                           check=True).stdout.decode().strip()
    if dirty:
        sys.exit("make_golden: vmm/ lib/ guest/ include/ have changes; golden files come "
                 "from a committed release:\n" + dirty)
    names = sys.argv[1:] or list(JOBS)
    note("tern %s (build/tern, built from that commit), %s" % (
        head, time.strftime("%Y-%m-%d", time.gmtime())))
    for n in names:
        JOBS[n](n)
    with open(os.path.join(GOLDEN, "manifest.txt"), "a") as f:
        f.write("\n".join(log) + "\n\n")


if __name__ == "__main__":
    main()
