"""Progress bars for every long loop: tqdm on stderr, so that stdout stays free for results.
On a terminal the bar redraws in place; in a log (stderr redirected) it writes a plain line at
most every 30 s and one at the end, instead of a line full of carriage returns."""

import os
import sys


class _Lines:
    """A stream for tqdm that turns its in-place redraws into whole lines."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text):
        text = text.replace("\r", "").rstrip("\n")
        if text.strip():
            self.stream.write(text + "\n")

    def flush(self):
        self.stream.flush()


def _terminal(stream):
    # While tfmargin's CLIs filter fd 2 it is a pipe; the filter says what the user has.
    told = os.environ.get("TFMARGIN_STDERR_TTY")
    if told is not None and stream is sys.stderr:
        return told == "1"
    return hasattr(stream, "isatty") and stream.isatty()


def Progress(total=None, desc="", enabled=True, unit="it", stream=None):  # noqa: N802
    """A tqdm bar used as `with Progress(n, "convert") as bar: bar.update(k)`."""
    from tqdm import tqdm

    stream = stream or sys.stderr
    if _terminal(stream):
        return tqdm(total=total, desc=desc, unit=unit, file=stream, disable=not enabled,
                    mininterval=0.2, dynamic_ncols=True)
    return tqdm(total=total, desc=desc, unit=unit, file=_Lines(stream), disable=not enabled,
                mininterval=30.0, ncols=80)
