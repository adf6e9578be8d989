"""Launcher for one app when deskpilot runs as root; runs as its own small process (stdlib only).

Why it exists: as root, bubblewrap would map the app's user to host uid 0, so
the app could read every root-only file it can see. The sandbox therefore runs
its apps as an unprivileged host uid instead (``setpriv`` inside bubblewrap).
Host folders the user hands to the apps (``Bind``) usually belong to root or
to the user, so that uid could not read or write them. This launcher gives
each such folder an *idmapped* mount in a private mount namespace: the folder
owner's files appear to the app as its own, and files the app creates there
are written to disk as the folder owner's. Nothing else on the host changes:
the mounts live in this process's mount namespace, which bubblewrap copies and
which disappears with the app. Then it execs bubblewrap (same pid, so the
parent-death signal the owner set still applies).

If a filesystem cannot be idmapped (old kernel, NFS, some FUSE), the folder is
bound as it is and a warning goes to the app's stderr log: the app may then
lack permission there.

Run as: python -I -S _launch.py SPEC_JSON  (SPEC: {"uid", "gid", "binds": [paths], "argv": [...]})
"""

from __future__ import annotations

import ctypes
import json
import os
import sys

_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_MS_REC = 0x4000
_MS_SLAVE = 1 << 19
_SYS_OPEN_TREE = 428
_SYS_MOVE_MOUNT = 429
_SYS_MOUNT_SETATTR = 442
_AT_FDCWD = -100
_AT_EMPTY_PATH = 0x1000
_AT_RECURSIVE = 0x8000
_OPEN_TREE_CLONE = 1
_OPEN_TREE_CLOEXEC = os.O_CLOEXEC
_MOUNT_ATTR_IDMAP = 0x00100000
_MOVE_MOUNT_F_EMPTY_PATH = 0x4

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]  # fmt: skip


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def _userns(uid: tuple[int, int], gid: tuple[int, int]) -> int:
    """fd of a fresh user namespace mapping ``uid[0]`` -> ``uid[1]`` (same for gid)."""
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        ok = libc.unshare(_CLONE_NEWUSER) == 0
        os.write(ready_w, b"1" if ok else b"0")
        os.read(done_r, 1)
        os._exit(0)
    try:
        if os.read(ready_r, 1) != b"1":
            raise OSError(ctypes.get_errno(), "cannot create a user namespace for an idmapped mount")
        with open(f"/proc/{pid}/uid_map", "w") as f:
            f.write(f"{uid[0]} {uid[1]} 1\n")
        with open(f"/proc/{pid}/gid_map", "w") as f:
            f.write(f"{gid[0]} {gid[1]} 1\n")
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.write(done_w, b"x")
        os.waitpid(pid, 0)
        for fd in (ready_r, ready_w, done_r, done_w):
            os.close(fd)


def _idmapped_clone(path: str, uid: int, gid: int) -> int:
    """A detached copy of the mount tree at ``path`` where its owner appears as uid/gid."""
    st = os.stat(path)
    ns = _userns((st.st_uid, uid), (st.st_gid, gid))
    try:
        flags = _OPEN_TREE_CLONE | _OPEN_TREE_CLOEXEC | _AT_RECURSIVE
        tree = _check(libc.syscall(_SYS_OPEN_TREE, _AT_FDCWD, path.encode(), flags), "open_tree")
        attr = _MountAttr(_MOUNT_ATTR_IDMAP, 0, 0, ns)
        try:
            _check(libc.syscall(_SYS_MOUNT_SETATTR, tree, b"", _AT_EMPTY_PATH | _AT_RECURSIVE,
                                ctypes.byref(attr), ctypes.sizeof(attr)), "idmapped mount")  # fmt: skip
        except OSError:
            os.close(tree)
            raise
        return tree
    finally:
        os.close(ns)


def main() -> None:
    spec = json.loads(sys.argv[1])
    _check(libc.unshare(_CLONE_NEWNS), "unshare mount namespace")
    _check(libc.mount(None, b"/", None, _MS_REC | _MS_SLAVE, None), "make mounts private")
    clones: list[tuple[str, int]] = []
    for path in spec["binds"]:  # clone every tree first, so no clone sees another's idmap
        try:
            clones.append((path, _idmapped_clone(path, spec["uid"], spec["gid"])))
        except OSError as exc:
            print(f"deskpilot: {path} is shown without ownership mapping ({exc}); the app may lack access",
                  file=sys.stderr, flush=True)  # fmt: skip
    for path, tree in sorted(clones, key=lambda c: c[0].count("/")):
        _check(libc.syscall(_SYS_MOVE_MOUNT, tree, b"", _AT_FDCWD, path.encode(), _MOVE_MOUNT_F_EMPTY_PATH), "move_mount")
        os.close(tree)
    os.execv(spec["argv"][0], spec["argv"])


if __name__ == "__main__":
    try:
        main()
    except OSError as exc:
        print(f"deskpilot launcher: {exc}", file=sys.stderr, flush=True)
        sys.exit(126)
