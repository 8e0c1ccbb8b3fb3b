"""The demo end to end at toy size (tiny backbones, a 12-identity synthetic set): data ->
teacher -> teacher signal -> MD and ArcFace students -> test.bin -> int8 TFLite -> report."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.train import tiny
from examples import demo

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STUDENTS = ("arcface", "margin_distillation", "arcdistill")  # the default, in training order


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tiny.register()
    out = tmp_path_factory.mktemp("demo")
    config = demo.DemoConfig(
        output_dir=str(out / "results"), data_dir=str(out / "data"), identities=12,
        images_per_identity=4, teacher="train", teacher_backbone=tiny.NAME, teacher_steps=4,
        teacher_batch_size=8, teacher_softmax_warmup_steps=1, teacher_margin_ramp_steps=2,
        softmax_warmup_steps=1, margin_ramp_steps=2,  # the recipes warm up and ramp
        student_backbone=tiny.NAME, batch_size=8, steps=4, steps_per_epoch=2, lr=0.05,
        lr_warmup_steps=1, calibration_images=16)
    with pytest.warns(Warning):  # the 12-identity set is smaller than the LFW layout
        return config, demo.run(config, log=lambda *a: None)


def _reference_accuracy(backbone_path, bin_path):
    """Test accuracy recomputed by another path: model.predict + numpy flip-sum + float64."""
    import keras

    from tfmargin.data.verification_bin import load_verification_bin
    from tfmargin.evaluate.verification import verification

    images, issame = load_verification_bin(bin_path)
    from tfmargin.distill import find_backbone

    model = find_backbone(keras.saving.load_model(backbone_path))  # the teacher is a classifier
    x = (images.astype(np.float32) - 127.5) / 127.5
    emb = model.predict(x, verbose=0).astype(np.float64) + model.predict(x[:, :, ::-1], verbose=0)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return verification(emb[0::2], emb[1::2], issame).accuracy


def test_every_stage_reports(results):
    config, r = results
    models = [row["method"] for row in r["rows"]]
    assert models == ["teacher", *STUDENTS, models[-1]]
    assert r["rows"][-1]["model"].endswith("int8 TFLite")
    assert r["export"]["method"] in STUDENTS
    for name in ("results.json", "results.md", "roc.png", "student_int8.tflite"):
        assert os.path.isfile(os.path.join(config.output_dir, name)), name
    with open(os.path.join(config.output_dir, "roc.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(os.path.join(config.output_dir, "results.json")) as f:
        assert json.load(f)["rows"] == json.loads(json.dumps(r["rows"]))
    # the MD student trained against the frozen centers the signal holds
    md = os.path.join(config.output_dir, "students", "margin_distillation", "classifier.keras")
    assert os.path.isfile(md)


def test_test_accuracy_matches_an_independent_computation(results):
    config, r = results
    test_bin = os.path.join(config.data_dir, "test.bin")
    for row in r["rows"][:4]:
        expected = _reference_accuracy(row["artifact"], test_bin)
        assert row["test_accuracy"] == pytest.approx(expected, abs=1e-9), row["model"]


def test_best_validation_student_is_the_one_exported(results):
    _, r = results
    students = [row for row in r["rows"] if row["method"] in STUDENTS
                and not row["model"].endswith("TFLite")]
    best = max(students, key=lambda row: row["val_accuracy"])
    assert r["export"]["method"] == best["method"]
    table = demo.format_results(r)
    for row in r["rows"]:
        assert f"{100 * row['test_accuracy']:.2f}" in table


def test_int8_file_is_integer_and_runs_like_the_float_student(results):
    from ai_edge_litert.interpreter import Interpreter

    config, r = results
    interpreter = Interpreter(model_path=r["export"]["path"])
    types = {d["dtype"] for d in interpreter.get_tensor_details()}
    assert np.int8 in types


def test_reuses_data_and_signal_when_unchanged(results, tmp_path):
    config, _ = results
    logs = []
    assert demo.ensure_dataset(config, log=logs.append)
    assert logs == [f"[demo] data: reusing {config.data_dir}"]
    teacher = os.path.join(config.output_dir, "teacher", "classifier.keras")
    demo.ensure_signal(config, teacher, log=logs.append)
    assert logs[-1].startswith("[demo] teacher signal: reusing")


@pytest.mark.parametrize("flag,message", [
    ("--methods=arcface,nope", "--methods: unknown method 'nope'"),
    ("--steps=5", "--steps: 5 is not a multiple of --steps_per_epoch"),
    ("--teacher=/nonexistent.keras", "--teacher: /nonexistent.keras does not exist"),
    ("--seeds=0,x", "--seeds: expected integers"),
    ("--methods=triplet_l2", "--methods: the triplet methods fine-tune the ArcFace student"),
])
def test_cli_flags_fail_in_one_line_before_work(flag, message, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "examples.demo", "--teacher=train",
                           f"--output={tmp_path}/o", f"--data={tmp_path}/d", flag],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == f"error: {message}" or \
        proc.stderr.strip().splitlines()[-1].startswith(f"error: {message}")
    assert not os.path.exists(tmp_path / "d") and not os.path.exists(tmp_path / "o")


RUN_MAIN = """
import runpy, sys
from tests.train import tiny
tiny.register()
sys.argv = ["demo", *sys.argv[1:]]
runpy.run_module("examples.demo", run_name="__main__")
"""


@pytest.mark.slow
def test_the_command_runs_to_the_table(tmp_path):
    """`python -m examples.demo` end to end at toy size (tiny backbones registered first):
    the table printed, the files it names written."""
    args = [f"--output={tmp_path}/o", f"--data={tmp_path}/d", "--identities=12",
            "--images_per_identity=4", "--teacher=train", f"--teacher_backbone={tiny.NAME}",
            "--teacher_steps=4", "--teacher_batch_size=8", "--teacher_softmax_warmup_steps=1",
            "--teacher_margin_ramp_steps=2", f"--student_backbone={tiny.NAME}", "--batch_size=8",
            "--steps=4", "--steps_per_epoch=2", "--lr_warmup_steps=1", "--softmax_warmup_steps=1",
            "--margin_ramp_steps=2", "--noexport_int8"]
    proc = subprocess.run([sys.executable, "-c", RUN_MAIN, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "margin_distillation" in proc.stdout and "arcface" in proc.stdout
    assert f"written: {tmp_path}/o/results.md" in proc.stdout
    assert os.path.exists(tmp_path / "o" / "results.json")


@pytest.mark.parametrize("flagfile", ["demo.cfg", "bench_synthetic.cfg"])
def test_demo_flagfiles_parse(flagfile, tmp_path):
    """Every flag in the recipe is known (absl refuses unknown ones) and validation runs up to
    the one bad value we add."""
    proc = subprocess.run([sys.executable, "-m", "examples.demo",
                           f"--flagfile=flags/{flagfile}", f"--output={tmp_path}/o", "--steps=7"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "error: --steps: 7 is not a multiple of --steps_per_epoch")


def test_every_method_with_seeds_gives_mean_and_std(tmp_path):
    """`--methods=all` with several seeds (flags/bench_synthetic.cfg at toy size): every method
    trains once per seed, triplet students fine-tune that seed's ArcFace student, and the
    summary is the mean and std of the rows it reports."""
    tiny.register()
    config = demo.DemoConfig(
        output_dir=str(tmp_path / "results"), data_dir=str(tmp_path / "data"), identities=12,
        images_per_identity=4, teacher="train", teacher_backbone=tiny.NAME, teacher_steps=2,
        teacher_batch_size=8, teacher_softmax_warmup_steps=1, student_backbone=tiny.NAME, batch_size=8, steps=2,
        steps_per_epoch=2, lr=0.05, lr_warmup_steps=1, methods=demo.ORDER, seeds=(0, 1),
        export_int8=False)
    with pytest.warns(Warning):
        r = demo.run(config, log=lambda *a: None)
    students = [row for row in r["rows"] if row["method"] != "teacher"]
    assert sorted((row["method"], row["seed"]) for row in students) == sorted(
        (m, s) for m in demo.ORDER for s in (0, 1))
    for method in demo.ORDER:
        accs = [row["test_accuracy"] for row in students if row["method"] == method]
        assert r["summary"][method]["mean"] == pytest.approx(np.mean(accs))
        assert r["summary"][method]["std"] == pytest.approx(np.std(accs))
    with open(os.path.join(config.output_dir, "students", "triplet_l2-seed1", "config.json")) as f:
        assert json.load(f)["init_backbone"].endswith(os.path.join("arcface-seed1",
                                                                   "best_backbone.keras"))
    assert "mean ± std over seeds" in demo.format_results(r)
