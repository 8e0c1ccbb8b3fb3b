"""Writes that either complete or leave nothing behind: temp file, then rename, in one place.

A killed or failing run must never leave a half-written artifact under its final name, nor
damage the file that was there before.
"""

import contextlib
import json
import os
import shutil


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
    on success it takes `path`'s place (an old `path` is moved aside first and removed after),
    on any error it is removed and `path` stays as it was. A staging directory left by a killed
    run is ours by its name and is removed first."""
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
    """Put the finished directory `tmp` in `path`'s place: an old `path` is moved aside first
    and removed after, and restored if the rename fails."""
    if not os.path.isdir(tmp):
        raise FileNotFoundError(f"{path}: the writer produced no directory")
    old = None
    if os.path.exists(path):
        old = f"{path}.old-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    try:
        os.replace(tmp, path)
    except BaseException:
        if old:
            os.replace(old, path)
        raise
    if old:
        shutil.rmtree(old, ignore_errors=True)
