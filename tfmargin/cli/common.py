"""What every CLI shares: one `error:` line on stderr and a documented exit code.

    @common.command(usage=(ConfigError,))      # decorate the absl main(argv)
    def main(argv): ...

    if __name__ == "__main__":
        common.run(main)                         # app.run with one-line flag errors

Exit codes: 0 done, 1 failed while working, 2 bad usage (one `error:` line on stderr).
Bad usage is an absl `app.UsageError` (or a type the CLI names in `usage=`): a bad flag, a
missing input or an output path that cannot be written, found before any work starts. A
failure while working is a `tfmargin.errors.TfmarginError` (or OSError, or a type the CLI
names in `failure=`). Ctrl-C exits with 130. Anything else is a bug and keeps its traceback.
No TensorFlow import here: the checks run in the first second.
"""

import functools
import os
import sys

from absl import app, flags

from tfmargin.errors import TfmarginError

OK, FAILED, USAGE, INTERRUPTED = 0, 1, 2, 130


def one_line(error):
    """The first non-empty line of str(error) (the one naming the file / flag / record)."""
    for line in str(error).splitlines():
        if line.strip():
            return line.strip()
    return type(error).__name__


def report(message, prefix=""):
    print(f"{prefix}error: {message}", file=sys.stderr, flush=True)


def command(main=None, *, usage=(), failure=(), describe=str, prefix=None):
    """Decorate an absl `main(argv)` so that an expected failure is one line and an exit code.

    usage: exception types reported as bad usage (exit 2), besides app.UsageError.
    failure: types reported as a failure while working (exit 1), besides TfmarginError and
        OSError.
    describe(error): the message for a caught error (default str); its first line is printed.
    prefix(): printed before `error:` (e.g. "prepare align: "), or None.
    The wrapped main returns the exit code instead of raising, so tests may call it directly.
    """
    if main is None:
        return functools.partial(command, usage=usage, failure=failure, describe=describe,
                                 prefix=prefix)
    usage_types = (app.UsageError, *usage)
    failure_types = (TfmarginError, OSError, *failure)

    @functools.wraps(main)
    def wrapped(argv):
        try:
            return main(argv) or OK
        except usage_types as e:
            error, code = e, USAGE
        except failure_types as e:
            error, code = e, FAILED
        except KeyboardInterrupt:
            error, code = "interrupted", INTERRUPTED
        report(one_line(error if code == INTERRUPTED else describe(error)),
               prefix() if prefix else "")
        return code

    return wrapped


def parse_flags(argv):
    """absl's flag parsing, with a bad flag as one `error:` line and exit 2 (no flag help)."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        report(" ".join(str(e).split()))
        sys.exit(USAGE)


def run(main):
    """`app.run(main)` for a `command`-decorated main, with one-line flag errors and without
    TensorFlow's native start-up lines or its Python INFO logs (tfmargin.cli.quiet)."""
    from tfmargin.cli.quiet import filter_native_stderr, quiet_python_logs

    filter_native_stderr()

    @functools.wraps(main)
    def quiet_main(argv):
        quiet_python_logs()  # after app.run has set absl's verbosity from the flags
        return main(argv)

    app.run(quiet_main, flags_parser=parse_flags)


def check_output(flag, path, kind="file"):
    """Refuse, before any work, an output path that cannot be written (app.UsageError naming
    --flag and the path): an existing `kind="dir"` output that is not a directory, an existing
    `kind="file"` output that is a directory, or a path whose nearest existing ancestor is not
    a writable directory (it could not be created). `kind=None` accepts either."""
    if not path:
        return
    target = os.path.normpath(os.path.expanduser(path))
    if os.path.exists(target):
        if kind == "dir" and not os.path.isdir(target):
            raise app.UsageError(f"--{flag}: {path} exists and is not a directory")
        if kind == "file" and os.path.isdir(target):
            raise app.UsageError(f"--{flag}: {path} is a directory, not a file")
        parent = target if os.path.isdir(target) else (os.path.dirname(target) or ".")
    else:
        parent = target
        while not os.path.exists(parent):
            up = os.path.dirname(parent) or "."
            if up == parent:
                break
            parent = up
    if not os.path.isdir(parent):
        raise app.UsageError(f"--{flag}: cannot create {path}: {parent} is a file, not a "
                             "directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise app.UsageError(f"--{flag}: cannot write {path}: {parent} is not writable")


def define_dataclass_flags(cls, helps, flag_values=flags.FLAGS, *, skipped=(), strings=(),
                           floats=()):
    """One flag per field of the dataclass `cls`, named after it, with its default and
    helps[name]. Tuples become list flags; `strings` are string flags whatever their default
    (a number or "auto"), `floats` are float flags whose default may be None."""
    import dataclasses

    defaults = cls()
    for field in dataclasses.fields(cls):
        name = field.name
        if name in skipped:
            continue
        default, help_ = getattr(defaults, name), helps[name]
        if name in strings:
            flags.DEFINE_string(name, str(default), help_, flag_values=flag_values)
        elif isinstance(default, bool):
            flags.DEFINE_bool(name, default, help_, flag_values=flag_values)
        elif isinstance(default, tuple):
            flags.DEFINE_list(name, [str(v) for v in default], help_, flag_values=flag_values)
        elif isinstance(default, int):
            flags.DEFINE_integer(name, default, help_, flag_values=flag_values)
        elif isinstance(default, float) or name in floats:
            flags.DEFINE_float(name, default, help_, flag_values=flag_values)
        else:
            flags.DEFINE_string(name, default, help_, flag_values=flag_values)
