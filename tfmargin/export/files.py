"""Atomic writes of whole directories (SavedModels), beside tfmargin.atomic's files: a failed
export leaves nothing under the final name, and a directory that was there stays intact."""

import contextlib
import os
import shutil


@contextlib.contextmanager
def atomic_directory(path):
    """Yield a temporary directory beside `path`; on success it takes `path`'s place (an old
    `path` is moved aside first and removed after), on any error it is removed."""
    path = os.path.abspath(os.fspath(path))
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        yield tmp
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
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def size_bytes(path):
    """Bytes of a file, or of every file under a directory."""
    path = os.fspath(path)
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)
