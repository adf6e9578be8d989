"""Set up a child's death signal and IPC/network namespaces, then exec it: the fallback of spawn.py.

Run as its own small interpreter (``python -I -S _enter.py OWNER SIG NEW_IPC IPC NET -- argv...``)
where util-linux's setpriv/unshare/nsenter are missing. It replaces a ``preexec_fn``: Python code
run in a fork of a busy, many-threaded process can wait forever on a lock another thread held at
the fork (a library's fork handler, the loader's lock), and a CI run hung exactly so. This script
is a fresh process: no such locks. Standard library only, nothing from the package (``-I -S``).

OWNER is the pid of the process that started us: the death signal is tied to it, and the namespace
files are read from its /proc entry (its fds stay its own, never inherited). SIG, IPC and NET are
``-`` when unused; NEW_IPC is ``1`` or ``0``.
"""

from __future__ import annotations

import ctypes
import os
import sys

_PR_SET_PDEATHSIG = 1
_CLONE_NEWIPC = 0x08000000
_CLONE_NEWNET = 0x40000000


def _fail(what: str) -> None:
    sys.stderr.write(f"deskpilot: {what}: {os.strerror(ctypes.get_errno())}\n")
    sys.stderr.flush()
    os._exit(125)


def _join(libc: ctypes.CDLL, owner: int, fd: str, kind: int, name: str) -> None:
    try:
        ns = os.open(f"/proc/{owner}/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        sys.stderr.write(f"deskpilot: cannot open the {name} namespace: {exc.strerror}\n")
        os._exit(125)
    if libc.setns(ns, kind) != 0:
        _fail(f"cannot join the {name} namespace")
    os.close(ns)


def main(args: list[str]) -> None:
    owner, sig, new_ipc, ipc, net, sep, *argv = args
    if sep != "--" or not argv:
        sys.stderr.write("deskpilot: _enter.py OWNER SIG NEW_IPC IPC NET -- argv...\n")
        os._exit(2)
    libc = ctypes.CDLL(None, use_errno=True)
    if sig != "-":
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != int(owner):  # the owner died before prctl took effect
            os._exit(1)
    if new_ipc == "1" and libc.unshare(_CLONE_NEWIPC) != 0:
        _fail("cannot make a new IPC namespace")
    if ipc != "-":
        _join(libc, int(owner), ipc, _CLONE_NEWIPC, "IPC")
    if net != "-":
        _join(libc, int(owner), net, _CLONE_NEWNET, "network")
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        sys.stderr.write(f"deskpilot: cannot run {argv[0]}: {exc.strerror}\n")
        os._exit(127)


if __name__ == "__main__":
    main(sys.argv[1:])
