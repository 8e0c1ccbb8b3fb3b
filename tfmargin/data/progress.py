"""Progress bars for every long loop: tqdm on stderr (redrawn in place on a terminal, a new
line every 30 s in a log), so that stdout stays free for results."""

import sys


def Progress(total=None, desc="", enabled=True, unit="it", stream=None):  # noqa: N802
    """A tqdm bar used as `with Progress(n, "convert") as bar: bar.update(k)`."""
    from tqdm import tqdm

    stream = stream or sys.stderr
    tty = hasattr(stream, "isatty") and stream.isatty()
    return tqdm(total=total, desc=desc, unit=unit, file=stream, disable=not enabled,
                mininterval=0.2 if tty else 30.0, dynamic_ncols=tty, leave=True)
