"""Kept for code that imports `tfmargin.heads.angular`: the cosine and margin functions live in
`tfmargin.margins` (below the heads, so that losses can use them without importing a head)."""

from tfmargin.margins import *  # noqa: F401,F403
from tfmargin.margins import __all__  # noqa: F401
