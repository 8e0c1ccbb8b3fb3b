"""Kept for code that imports `tfmargin.data.synthetic`: the synthetic face generator is a
dataset, not a data format, and lives in `tfmargin.datasets.synthetic`."""

from tfmargin.datasets.synthetic import *  # noqa: F401,F403
from tfmargin.datasets.synthetic import __all__  # noqa: F401
