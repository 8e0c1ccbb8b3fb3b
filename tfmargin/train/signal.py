"""Kept for code that imports `tfmargin.train.signal`: the teacher signal lives in
`tfmargin.distill`."""

from tfmargin.distill import *  # noqa: F401,F403
from tfmargin.distill import __all__  # noqa: F401
