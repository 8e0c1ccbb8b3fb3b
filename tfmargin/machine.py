"""The machine a number was measured on: recorded with every benchmark row and every
export report, so that a number never travels without it."""

import os
import platform


def machine_info():
    """The machine a number was measured on, recorded with every result."""
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import tensorflow as tf  # noqa: F401  (version only; rows import it anyway)
        info["tensorflow"] = tf.__version__
    except ImportError:
        pass
    return info
