"""Kept for code that imports `tfmargin.data.synthetic`: the synthetic face generator is a
dataset, not a data format, and lives in `tfmargin.datasets.synthetic`. Its submodules stay
importable under the old names too (`tfmargin.data.synthetic.render`, ...)."""

import importlib
import sys

from tfmargin.datasets.synthetic import *  # noqa: F401,F403
from tfmargin.datasets.synthetic import __all__  # noqa: F401

for _name in ("canvas", "contact_sheet", "dataset", "generate", "identity", "nuisance", "render"):
    sys.modules[f"{__name__}.{_name}"] = importlib.import_module(
        f"tfmargin.datasets.synthetic.{_name}")
