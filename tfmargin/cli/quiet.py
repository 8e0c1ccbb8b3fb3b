"""Keeps TensorFlow's native start-up chatter off a CLI user's terminal.

TensorFlow's C++ libraries write to file descriptor 2 directly, at import and when the first op
initialises the devices: "WARNING: All log messages before absl::InitializeLog() ...", "...
port.cc] oneDNN custom operations are on ...", "cudart_stub ... Could not find cuda drivers",
"cpu_feature_guard ... This TensorFlow binary is optimized ..." (and its "To enable the
following instructions" line), "failed call to cuInit" on a machine without a GPU.
TF_CPP_MIN_LOG_LEVEL silences only some of them. While a CLI runs, fd 2 goes through a small
filter process that drops exactly those known lines and forwards everything else as it comes
(partial lines too, so progress bars redraw): our `error:` lines, tracebacks, warnings, and
every other native message, errors included. Being a separate process, it forwards what a
crashing process wrote last. TFMARGIN_TF_LOGS=1 turns it off.

TensorFlow's Python side logs at INFO as it writes a SavedModel ("Assets written to ...",
"Function `serve` contains input name(s) ..."), through the `tensorflow` logger and absl's,
which an absl app prints at INFO unless told otherwise: `quiet_python_logs` keeps both at
WARNING, unless --verbosity was given or TFMARGIN_TF_LOGS=1.
"""

import atexit
import os
import subprocess
import sys

# Substrings of the start-up lines dropped; nothing else is.
STARTUP = (
    b"All log messages before absl::InitializeLog() is called are written to STDERR",
    b"oneDNN custom operations are on",
    b"Could not find cuda drivers on your machine",
    b"failed call to cuInit",
    b"This TensorFlow binary is optimized to use available CPU instructions",
    b"To enable the following instructions:",
    b"Unable to register cuDNN factory", b"Unable to register cuFFT factory",
    b"Unable to register cuBLAS factory", b"computation placer already registered",
    b"NodeDef mentions attribute use_unbounded_threadpool",
)

# The filter process: reads the pipe, writes to its stdout (our real stderr). Records end at
# "\n" or "\r"; a record is dropped only if it holds one of the start-up substrings.
_FILTER = r"""
import os, sys
drop = [bytes.fromhex(h) for h in sys.argv[1:]]
out, buf = 1, b""
def emit(data):
    while data:
        try:
            data = data[os.write(out, data):]
        except OSError:
            return
while True:
    try:
        chunk = os.read(0, 65536)
    except OSError:
        chunk = b""
    if not chunk:
        emit(buf)
        break
    buf += chunk
    start = 0
    for i, c in enumerate(buf):
        if c in (10, 13):
            record = buf[start:i + 1]
            if not any(d in record for d in drop):
                emit(record)
            start = i + 1
    buf = buf[start:]
    if len(buf) > 4096 and not any(d in buf for d in drop):
        emit(buf)
        buf = b""
"""

_state = {}


def filter_native_stderr():
    """Filter fd 2 for the rest of the process (idempotent); returns whether it is on."""
    if os.environ.get("TFMARGIN_TF_LOGS") or _state:
        return False
    try:
        sys.stderr.flush()
        tty = os.isatty(2)
        real = os.dup(2)
        proc = subprocess.Popen([sys.executable, "-S", "-c", _FILTER, *(d.hex() for d in STARTUP)],
                                stdin=subprocess.PIPE, stdout=real, close_fds=True)
        os.dup2(proc.stdin.fileno(), 2)
    except (OSError, ValueError):  # no usable fd 2 (an embedding host): leave it alone
        return False
    _state.update(real=real, proc=proc)
    os.environ["TFMARGIN_STDERR_TTY"] = "1" if tty else "0"  # for the progress bars

    def restore():
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(real, 2)       # our last write end of the pipe goes away ...
        proc.stdin.close()     # ... and with it the filter's input: it drains and exits
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()

    atexit.register(restore)
    return True


def quiet_python_logs():
    """Python INFO logs of TensorFlow and absl -> WARNING (see the module docstring); returns
    whether it changed anything."""
    import logging

    from absl import flags
    from absl import logging as absl_logging

    given = "verbosity" in flags.FLAGS and flags.FLAGS["verbosity"].present
    if os.environ.get("TFMARGIN_TF_LOGS") or given:
        return False
    absl_logging.set_verbosity(absl_logging.WARNING)
    logging.getLogger("tensorflow").setLevel(logging.WARNING)
    return True
