"""python -m tfmargin.cli.export: flags checked before any work, and one export end to end."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(*args, timeout=600):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "tfmargin.cli.export", *args], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def workdir(synthetic, tmp_path_factory):
    import keras

    from tfmargin.models import mobilefacenet

    d = tmp_path_factory.mktemp("cli_export")
    os.symlink(synthetic, d / "data")  # the shared dataset, read-only
    keras.utils.set_random_seed(2)
    model = mobilefacenet(blocks=(1, 1, 1, 1), name="student")
    model.save(str(d / "student.keras"))
    return d, model


@pytest.mark.parametrize("args, flag", [
    ([], "--model"),
    (["--model=missing.keras", "--output=o"], "--model"),
    (["--model={m}", "--output=o", "--formats=tflite_fp32,tflite_int4"], "--formats"),
    (["--model={m}", "--output=o", "--formats=tflite_int8"], "--representative"),
    (["--model={m}", "--output=o", "--formats=qat_int8"], "--qat_data"),
    (["--model={m}", "--output=o", "--formats=onnx", "--opset=9"], "--opset"),
    (["--model={m}", "--output=o", "--formats=onnx", "--threads=0"], "--threads"),
    (["--model={m}", "--output=o", "--formats=onnx", "--test_bin=nope.bin"], "--test_bin"),
])
def test_bad_flags_fail_before_work(workdir, args, flag):
    d, _ = workdir
    args = [a.format(m=d / "student.keras").replace("--output=o", f"--output={d / 'o'}")
            for a in args]
    proc = _run(*args, timeout=120)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert flag in last, proc.stderr[-500:]
    assert not (d / "o").exists()


def test_export_end_to_end(workdir):
    from ai_edge_litert.interpreter import Interpreter

    d, model = workdir
    out = d / "savedmodels" / "student"
    proc = _run(f"--model={d / 'student.keras'}", f"--output={out}",
                "--formats=tflite_fp32,tflite_int8", f"--representative={d / 'data'}",
                "--num_images=16", f"--test_bin={d / 'data' / 'test.bin'}",
                "--latency_runs=3", "--threads=1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("tflite_fp32.tflite", "tflite_int8.tflite", "model.keras", "model_card.json",
                 "report.json", "report.md"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert report["command"].startswith("python -m tfmargin.cli.export --model=")
    assert set(report["artifacts"]) == {"keras", "tflite_fp32", "tflite_int8"}
    # The fp32 file against the Keras model, run here by hand.
    x = np.random.default_rng(0).uniform(-1, 1, (1, 112, 112, 3)).astype(np.float32)
    it = Interpreter(model_path=str(out / "tflite_fp32.tflite"))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    got = it.get_tensor(it.get_output_details()[0]["index"])[0].astype(np.float64)
    want = np.asarray(model(x, training=False), np.float64)[0]
    assert got @ want / np.linalg.norm(got) / np.linalg.norm(want) > 0.99999
    card = json.loads((out / "model_card.json").read_text())
    assert card["export"]["calibration_images"] == 16
