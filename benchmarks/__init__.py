"""Benchmark rows for `make bench` (`python -m benchmarks.run`).

Each module in this package is one row: it defines `NAME` (the row's file name under
bench/results/), `DESCRIPTION`, and `run(quick=False, **options) -> dict`. A row measures its
subject against a baseline in the same process and reports the ratio; `quick=True` shrinks
the problem so that tests can exercise the code path (quick numbers are never reported).
Rows are discovered by module name, so adding a row never edits a shared list.
"""

import importlib
import pkgutil
import sys

if sys.argv[:1] == ["-m"]:  # `python -m benchmarks.run`: quiet before TensorFlow loads
    from tfmargin.cli.quiet import filter_native_stderr

    filter_native_stderr()

_NOT_ROWS = {"common", "run", "gpu_step"}  # helpers, the command line, the GPU script


def row_modules():
    """{row name: module} for every row module in this package, sorted by name."""
    rows = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_") or info.name in _NOT_ROWS:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        rows[module.NAME] = module
    return dict(sorted(rows.items()))
