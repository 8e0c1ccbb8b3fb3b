"""Writes that either complete or leave nothing behind: temp file, then rename, in one place.

A killed or failing run must never leave a half-written artifact under its final name, nor
damage the file that was there before.
"""

import contextlib
import json
import os
import shutil
import sys


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """Yield a temporary path beside `path` (its folder is created); on success it replaces
    `path` atomically, on any error it is removed and `path` stays as it was. `suffix` keeps
    an extension that a writer insists on (".keras", ".npz", ...)."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{suffix}"
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def write_bytes(path, data):
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
    return os.fspath(path)


def write_json(path, obj, sort_keys=False):
    return write_bytes(path, (json.dumps(obj, indent=2, sort_keys=sort_keys) + "\n").encode())


def read_json(path):
    """The JSON object (dict) in `path`; None when the file is missing, unreadable, not JSON
    or not an object: the caller treats it as never written."""
    try:
        with open(path) as f:
            value = json.load(f)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


class AllOrNothing:
    """Context-manager protocol for writers with `close()` (commit everything) and `abort()`
    (discard everything): leaving the block by an exception aborts."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()


@contextlib.contextmanager
def atomic_directory(path, staging=None, create=False):
    """Yield a staging directory beside `path` (default `path.tmp-PID`; created when `create`);
    on success it takes `path`'s place (replace_directory), on any error it is removed and
    `path` stays as it was. A staging directory of that name left by a killed run is removed
    first (a single writer should name a fixed `staging`, so that a rerun finds it)."""
    path = os.path.abspath(os.fspath(path))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = os.path.abspath(staging) if staging else f"{path}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    if create:
        os.makedirs(tmp)
    try:
        yield tmp
        replace_directory(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_directory(tmp, path):
    """Put the finished directory `tmp` in `path`'s place. Where the kernel can swap two names
    in one step (Linux renameat2 RENAME_EXCHANGE), `path` is at every moment the old directory
    or the new one, and the old one is removed after; elsewhere the old `path` is moved aside
    first (a kill between the two renames leaves it as `path.old-PID`) and restored if the
    second rename fails."""
    if not os.path.isdir(tmp):
        raise FileNotFoundError(f"{path}: the writer produced no directory")
    if not os.path.exists(path):
        os.replace(tmp, path)
        return
    if _exchange(tmp, path):
        shutil.rmtree(tmp, ignore_errors=True)  # the old directory, now under tmp's name
        return
    old = f"{path}.old-{os.getpid()}"
    shutil.rmtree(old, ignore_errors=True)
    os.replace(path, old)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.replace(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _exchange(a, b):
    """Swap the names `a` and `b` atomically; False where the system cannot (not Linux, a libc
    without renameat2, a file system such as NFS that refuses the flag: EINVAL). Any other
    failure is left to the fallback's plain renames, which report it."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError, TypeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def recover_directory(path):
    """After a kill inside replace_directory's fallback (between its two renames), `path` is
    missing and its previous contents are `path.old-PID`: put them back. Leftover `.old-PID`
    copies beside an existing `path` are removed. Returns True when it restored one."""
    path = os.path.abspath(os.fspath(path))
    parent, name = os.path.split(path)
    if not os.path.isdir(parent):
        return False
    old = sorted(os.path.join(parent, n) for n in os.listdir(parent)
                 if n.startswith(name + ".old-"))
    restored = False
    if old and not os.path.exists(path):
        os.replace(old.pop(), path)
        restored = True
    for stale in old:
        shutil.rmtree(stale, ignore_errors=True)
    return restored
