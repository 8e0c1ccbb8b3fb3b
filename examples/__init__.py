"""Programs built on tfmargin that are not part of the installed library: the end-to-end demo
(`make demo`, `python -m examples.demo`) and the synthetic-data calibration experiment
(`python -m examples.calibrate_synthetic`). Run them from the repository root."""

import sys

if sys.argv[:1] == ["-m"]:  # `python -m` is locating a command here: quiet before TF loads
    from tfmargin.cli.quiet import filter_native_stderr

    filter_native_stderr()
