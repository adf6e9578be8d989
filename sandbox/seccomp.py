"""A seccomp filter that stops apps from making set-user-ID or set-group-ID files.

Why: as root, host folders are shown to the apps through idmapped mounts, so a
file an app creates in a share belongs, on the host, to the share's owner,
often root. Without this filter an app (driven by a model) could copy a shell
into a share and ``chmod 4755`` it: a root-owned set-user-ID shell on the host,
usable by any local user who can reach that folder. Like systemd's
``RestrictSUIDSGID=``, the filter fails with EPERM every chmod/fchmod/fchmodat
and every open/openat/creat/mknod/mknodat whose mode has S_ISUID or S_ISGID,
makes openat2 (whose mode cannot be inspected) fail with ENOSYS so libc falls
back to openat, and refuses the x32 syscall ABI on x86-64.

io_uring is refused too (io_uring_setup, io_uring_enter, io_uring_register fail
with ENOSYS, as container runtimes' default profiles do): its IORING_OP_OPENAT
carries the mode in a shared-memory ring the filter never sees, so an app made a
set-user-ID root file in a share through it. Programs that use io_uring fall
back to plain syscalls on ENOSYS.

The program is classic BPF, built here from a table of syscall numbers
(x86-64 and aarch64); bubblewrap loads it with ``--seccomp FD``. On other
architectures ``program()`` returns None and no filter is used.
"""

from __future__ import annotations

import errno
import platform
import struct

_LD_W_ABS = 0x20
_JEQ = 0x15
_JGE = 0x35
_JSET = 0x45
_RET = 0x06
_ALLOW = 0x7FFF0000
_ERRNO = 0x00050000
_SUID_SGID = 0o6000
_X32_BIT = 0x40000000
_NR, _ARCH = 0, 4


def _arg(index: int) -> int:
    return 16 + 8 * index  # low 32 bits of seccomp_data.args[index] (little-endian)


# machine -> (AUDIT_ARCH, {syscall number: index of its mode argument}, refused with ENOSYS, refuse x32)
# refused: openat2 (437) and io_uring_setup/enter/register (425-427), the same numbers on both
_REFUSED = (437, 425, 426, 427)
_TABLES = {
    "x86_64": (0xC000003E, {90: 1, 91: 1, 268: 2, 452: 2, 2: 2, 257: 3, 85: 1, 133: 1, 259: 2}, _REFUSED, True),
    "aarch64": (0xC00000B7, {52: 1, 53: 2, 452: 2, 56: 3, 33: 2}, _REFUSED, False),
}


def _ins(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def program(machine: str | None = None) -> bytes | None:
    """The filter as bytes for ``bwrap --seccomp``, or None on an architecture we have no table for."""
    table = _TABLES.get(machine or platform.machine())
    if table is None:
        return None
    arch, modes, refused, x32 = table
    out = [_ins(_LD_W_ABS, _ARCH), _ins(_JEQ, arch, 1, 0), _ins(_RET, _ERRNO | errno.EPERM)]
    if x32:
        out += [_ins(_LD_W_ABS, _NR), _ins(_JGE, _X32_BIT, 0, 1), _ins(_RET, _ERRNO | errno.ENOSYS)]
    for nr in refused:
        out += [_ins(_LD_W_ABS, _NR), _ins(_JEQ, nr, 0, 1), _ins(_RET, _ERRNO | errno.ENOSYS)]
    for nr, index in modes.items():
        out += [
            _ins(_LD_W_ABS, _NR),
            _ins(_JEQ, nr, 0, 3),
            _ins(_LD_W_ABS, _arg(index)),
            _ins(_JSET, _SUID_SGID, 0, 1),
            _ins(_RET, _ERRNO | errno.EPERM),
        ]
    out.append(_ins(_RET, _ALLOW))
    return b"".join(out)
