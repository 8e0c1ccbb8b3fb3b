"""Export file helpers. Whole directories (SavedModels) are written with
`tfmargin.atomic.atomic_directory`: a failed export leaves nothing under the final name, and a
directory that was there stays intact."""

import os

from tfmargin.atomic import atomic_directory  # noqa: F401  (exporters import it from here)


def size_bytes(path):
    """Bytes of a file, or of every file under a directory."""
    path = os.fspath(path)
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)
