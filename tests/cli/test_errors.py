"""Every CLI: an expected failure is one `error:` line on stderr and a documented exit code
(0 done, 1 failed while working, 2 bad usage); no traceback, no flag help. An output path
that cannot be created is refused before any work (tfmargin/cli/common.py)."""

import os
import re
import subprocess
import sys

import pytest
from absl import app

from tfmargin.cli import common
from tfmargin.errors import TfmarginError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLIS = ("prepare", "train", "teacher", "evaluate", "export", "compare", "demo", "bench",
        "calibrate_synthetic")
MODULES = {cli: f"tfmargin.cli.{cli}" for cli in CLIS}
MODULES.update(demo="examples.demo", bench="benchmarks.run",
               calibrate_synthetic="examples.calibrate_synthetic")

# cli: (a usage error, the output flag, an output path under the regular file F). MODEL and
# DATA are existing files (not a model, not data); the output cases are kept small in case the
# check were missing (bench: an unknown row, so that it never runs every row).
CASES = {
    "prepare": (["synthetic", "--identities=many"],
                "--output", ["synthetic", "--output=F/synthetic", "--identities=2",
                             "--images_per_identity=2", "--workers=1", "--noprogress"]),
    "train": (["--role=teacher", "--data=DATA", "--batch_size=0"],
              "--output_dir", ["--role=teacher", "--data=DATA", "--output_dir=F/run",
                               "--steps=1", "--steps_per_epoch=1"]),
    "teacher": (["--teacher=MODEL", "--data=DATA", "--output=D/signal", "stray"],
                "--output", ["--teacher=MODEL", "--data=DATA", "--output=F/signal"]),
    "evaluate": (["--model=MODEL"],
                 "--output_json", ["--model=MODEL", "--bins=DATA", "--output_json=F/eval.json",
                                   "--noprogress"]),
    "export": (["--model=MODEL"],
               "--output", ["--model=MODEL", "--output=F/sub", "--formats=tflite_fp32",
                            "--latency_runs=0", "--noreport"]),
    "compare": (["--arms=arcdistill", "--teacher=MODEL", "--data=DATA", "--test_bin=DATA",
                 "--identification=DATA"],
                "--output_dir", ["--teacher=MODEL", "--data=DATA", "--test_bin=DATA",
                                 "--identification=DATA", "--output_dir=F/out"]),
    "demo": (["--methods=arcface,nope", "--output=D/o", "--data=D/d"],
             "--output", ["--output=F/o", "--data=D/d", "--teacher=MODEL", "--identities=2",
                          "--images_per_identity=2", "--steps=1", "--steps_per_epoch=1"]),
    "bench": (["--unknown_flag=1"],
              "--output_dir", ["--output_dir=F/results", "--rows=no_such_row"]),
    "calibrate_synthetic": (["--steps=lots"],
                            "--data", ["--data=F/synthetic", "--identities=2",
                                       "--images_per_identity=2", "--model_free_only"]),
}


@pytest.fixture
def place(tmp_path):
    (tmp_path / "F").write_text("a regular file\n")
    (tmp_path / "model.keras").write_bytes(b"not read: the checks fail first")
    (tmp_path / "data.rec").write_bytes(b"not read either")
    return tmp_path


def _snapshot(root):
    """Every path under root, with the size of each file."""
    return sorted((os.path.relpath(os.path.join(d, n), root),
                   os.path.getsize(os.path.join(d, n)) if n in files else None)
                  for d, dirs, files in os.walk(root) for n in dirs + files)


def _run(cli, args, place):
    args = [a.replace("MODEL", str(place / "model.keras")).replace("DATA", str(place / "data.rec"))
            .replace("=F/", f"={place / 'F'}/").replace("=D/", f"={place}/") for a in args]
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL",
                                                             "TFMARGIN_TF_LOGS")}
    env.update(PYTHONPATH=ROOT, KERAS_BACKEND="tensorflow")
    proc = subprocess.run([sys.executable, "-m", MODULES[cli], *args], cwd=place,
                          capture_output=True, text=True, env=env, timeout=180)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    # no flag help, no second line, and none of TensorFlow's native start-up lines
    ours = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(ours) == 1, proc.stderr[-3000:]
    assert "error: " in ours[0] and "--helpshort" not in ours[0]
    return proc.returncode, ours[0]


@pytest.mark.parametrize("cli", CLIS)
def test_usage_error_is_one_line_exit_2(cli, place):
    before = _snapshot(place)
    code, line = _run(cli, CASES[cli][0], place)
    assert code == 2, line
    assert re.match(r"^(prepare \w+: )?error: \S", line), line
    assert _snapshot(place) == before


@pytest.mark.parametrize("cli", CLIS)
def test_output_under_a_regular_file_fails_fast(cli, place):
    flag, args = CASES[cli][1:]
    before = _snapshot(place)
    code, line = _run(cli, args, place)
    assert code == 2, line
    assert f"error: {flag}: " in line and str(place / "F") in line, line
    assert "is a file, not a directory" in line, line
    assert _snapshot(place) == before  # nothing written: no model loaded, nothing trained


def test_command_maps_errors_to_exit_codes(capsys):
    class Usage(ValueError):
        pass

    def raising(error):
        @common.command(usage=(Usage,), describe=lambda e: f"--flag: {e}", prefix=lambda: "x: ")
        def main(argv):
            raise error
        return main([])

    for error, code in [(app.UsageError("bad"), 2), (Usage("bad"), 2),
                        (TfmarginError("bad\nsecond line"), 1), (OSError("bad"), 1),
                        (KeyboardInterrupt(), 130)]:
        assert raising(error) == code
        err = capsys.readouterr().err
        assert err == ("x: error: interrupted\n" if code == 130 else "x: error: --flag: bad\n")
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        raising(ZeroDivisionError("bug"))
    assert common.command(lambda argv: None)([]) == 0
    assert common.command(lambda argv: 3)([]) == 3


def test_check_output(tmp_path):
    (tmp_path / "F").write_text("x")
    common.check_output("out", str(tmp_path / "new" / "deeper" / "x.json"), "file")
    common.check_output("out", str(tmp_path), "dir")
    common.check_output("out", str(tmp_path / "F"), "file")  # replaced: allowed
    common.check_output("out", None)
    for path, kind, words in [(tmp_path / "F", "dir", "exists and is not a directory"),
                              (tmp_path, "file", "is a directory, not a file"),
                              (tmp_path / "F" / "a" / "b", None, "is a file, not a directory")]:
        with pytest.raises(app.UsageError, match=f"^--out: .*{words}"):
            common.check_output("out", str(path), kind)


QUIET = """
import os, sys, warnings
from tfmargin.cli.quiet import filter_native_stderr
assert filter_native_stderr()
import tensorflow as tf
tf.constant(1.0) + 1.0  # initialises the devices: cuda / cuInit lines where there is no GPU
os.write(2, b"E0000 00:00:1.5 alloc.cc:1] a real native error\\n")
print("ours", file=sys.stderr)
warnings.warn("theirs")
raise SystemExit(3)
"""


def test_tensorflow_startup_lines_are_filtered_and_nothing_else():
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL",
                                                         "TFMARGIN_TF_LOGS")}
    env["PYTHONPATH"] = ROOT
    quiet = subprocess.run([sys.executable, "-c", QUIET], capture_output=True, text=True,
                           env=env, timeout=120)
    assert quiet.returncode == 3
    lines = quiet.stderr.splitlines()
    assert lines[:2] == ["E0000 00:00:1.5 alloc.cc:1] a real native error", "ours"], lines
    assert len(lines) == 3 and lines[2].endswith("UserWarning: theirs"), lines
    # the same script with the filter turned off shows what it removes (on this machine)
    env["TFMARGIN_TF_LOGS"] = "1"
    loud = subprocess.run([sys.executable, "-c", QUIET.replace("assert filter", "filter")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert "ours" in loud.stderr and "UserWarning: theirs" in loud.stderr


def test_a_crash_still_gets_its_last_words_out():
    code = ("import os\n"
            "from tfmargin.cli.quiet import filter_native_stderr\n"
            "assert filter_native_stderr()\n"
            "os.write(2, b'F0000 00:00:1.0 check.cc:1] Check failed: why\\n')\n"
            "os.abort()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=ROOT), timeout=60)
    assert proc.returncode != 0
    assert "Check failed: why" in proc.stderr


PY_LOGS = """
import logging
from absl import logging as absl_logging
from tfmargin.cli import common

@common.command
def main(argv):
    absl_logging.info("absl info line")                       # TF's SavedModel writer does this
    logging.getLogger("tensorflow").info("tf info line")      # and this ("Assets written to")
    absl_logging.warning("absl warning line")

common.run(main)
"""


@pytest.mark.parametrize("extra,env,loud", [([], {}, False), (["--verbosity=0"], {}, True),
                                            ([], {"TFMARGIN_TF_LOGS": "1"}, True)])
def test_python_info_logs_are_quiet_unless_asked_for(extra, env, loud):
    environ = {k: v for k, v in os.environ.items() if k != "TFMARGIN_TF_LOGS"}
    environ.update(PYTHONPATH=ROOT, **env)
    proc = subprocess.run([sys.executable, "-c", PY_LOGS, *extra], capture_output=True,
                          text=True, env=environ, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "absl warning line" in proc.stderr
    assert ("absl info line" in proc.stderr) == loud
    assert ("tf info line" in proc.stderr) == loud
