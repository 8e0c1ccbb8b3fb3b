"""Keeps TensorFlow's native start-up chatter off a CLI user's terminal.

TensorFlow's C++ libraries write to file descriptor 2 directly, at import and when the first op
initialises the devices, before absl logging is configured: "WARNING: All log messages before
absl::InitializeLog() ...", "I0000 00:00:... port.cc] oneDNN custom operations are on ...",
"cudart_stub ... Could not find cuda drivers", "E0000 00:00:... failed call to cuInit" on a
machine without a GPU. TF_CPP_MIN_LOG_LEVEL silences only some of them. While a CLI runs, fd 2
goes through a pipe whose reader drops exactly those lines (absl's uninitialised prefix
"X0000 00:00:"; Python's own absl logging carries a real date) and forwards everything else:
our `error:` lines, tracebacks, warnings. TFMARGIN_TF_LOGS=1 shows them all.
"""

import atexit
import os
import re
import sys
import threading

NATIVE = re.compile(rb"^(WARNING: All log messages before absl::InitializeLog\(\) is called "
                    rb"are written to STDERR|[IWE]0000 00:00:)")


def filter_native_stderr():
    """Filter fd 2 for the rest of the process (idempotent); returns whether it is on."""
    if os.environ.get("TFMARGIN_TF_LOGS") or getattr(filter_native_stderr, "on", False):
        return False
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        sys.stderr.flush()
        real = os.dup(2)
        read, write = os.pipe()
        os.dup2(write, 2)
        os.close(write)
    except OSError:  # no usable fd 2 (an embedding host): leave it alone
        return False

    def pump():
        with os.fdopen(read, "rb") as pipe:
            for line in pipe:
                if not NATIVE.match(line):
                    os.write(real, line)

    thread = threading.Thread(target=pump, name="tfmargin-stderr", daemon=True)
    thread.start()

    def restore():
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(real, 2)  # the pipe's last writer closes: the reader drains and ends
        thread.join(timeout=5)

    atexit.register(restore)
    filter_native_stderr.on = True
    return True
