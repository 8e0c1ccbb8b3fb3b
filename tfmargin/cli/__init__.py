"""Thin absl command-line wrappers over library functions (`python -m tfmargin.cli.NAME`)."""

import sys

if sys.argv[:1] == ["-m"]:  # `python -m` is locating a command here: quiet before TF loads
    from tfmargin.cli.quiet import filter_native_stderr

    filter_native_stderr()
