"""A tiny progress bar for conversion loops (stderr; a line per ~10 % when not a terminal)."""

import sys
import time


class Progress:
    """    with Progress(total, "convert") as bar:
            for ...: bar.update(1)
    """

    def __init__(self, total=None, desc="", stream=None, enabled=True):
        self.total = total
        self.desc = desc
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.count = 0
        self._start = time.perf_counter()
        self._last = 0.0
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._next_pct = 10

    def update(self, n=1):
        self.count += n
        if not self.enabled:
            return
        now = time.perf_counter()
        if self._tty:
            if now - self._last >= 0.2 or (self.total and self.count >= self.total):
                self._last = now
                self.stream.write("\r" + self._line(now))
                self.stream.flush()
        elif self.total:
            pct = 100 * self.count / self.total
            if pct >= self._next_pct:
                self._next_pct = (int(pct) // 10 + 1) * 10
                self.stream.write(self._line(now) + "\n")

    def _line(self, now):
        elapsed = max(now - self._start, 1e-9)
        rate = self.count / elapsed
        if self.total:
            width = 30
            done = int(width * min(self.count / self.total, 1))
            eta = (self.total - self.count) / rate if rate > 0 else 0
            return (f"{self.desc} [{'#' * done}{'.' * (width - done)}] {self.count}/{self.total} "
                    f"{rate:.0f}/s eta {eta:.0f}s")
        return f"{self.desc} {self.count} {rate:.0f}/s"

    def close(self):
        if self.enabled and self._tty:
            self.stream.write("\r" + self._line(time.perf_counter()) + "\n")
            self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
