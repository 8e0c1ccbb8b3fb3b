"""python -m tfmargin.cli.train: every shipped recipe parses and validates with the CLI's own
flag definitions, and bad flags give one line naming the flag before any work."""

import glob
import json
import os

import numpy as np
import pytest
from absl import flags

from tfmargin.cli import train as cli
from tests.train.fixtures import signal  # noqa: F401
from tfmargin.train import METHODS, TrainConfig, validate

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECIPES = sorted(glob.glob(os.path.join(ROOT, "flags", "*_ms1m.cfg")))


def _parse(*argv):
    fv = flags.FlagValues()
    cli.define_flags(fv)
    fv(["train", *argv])
    return cli.config_from_flags(fv)


def test_all_recipes_exist():
    names = {os.path.basename(p) for p in RECIPES}
    assert "teacher_r100_ms1m.cfg" in names
    assert names >= {f"student_mbf_{m}_ms1m.cfg" for m in METHODS}


@pytest.mark.parametrize("recipe", RECIPES, ids=os.path.basename)
def test_recipe_parses_and_validates(recipe):
    config = validate(_parse(f"--flagfile={recipe}"), check_files=False)
    triplet = "triplet" in os.path.basename(recipe)
    # the triplet students fine-tune as Feng et al. do: lr 1e-3, K = 18 images per identity
    assert (config.lr, config.momentum, config.weight_decay, config.batch_size) == (
        0.001 if triplet else 0.1, 0.9, 5e-4, 576 if triplet else 512)
    if triplet:  # each of 8 mirrored replicas gets whole groups of K
        assert config.strategy == "mirrored" and config.batch_size // 8 % 18 == 0
    assert config.lr_steps == (100_000, 160_000, 220_000) and config.lr_schedule == "piecewise"
    assert config.val_bin not in config.test_bins
    if os.path.basename(recipe).startswith("teacher"):
        assert (config.role, config.backbone, config.head, config.margin, config.scale) == (
            "teacher", "iresnet100", "arcface", 0.5, 64.0)
        return
    method = os.path.basename(recipe)[len("student_mbf_"):-len("_ms1m.cfg")]
    assert (config.role, config.method, config.backbone, config.embedding_size) == (
        "student", method, "mobilefacenet", 512)
    expected = {"margin_distillation": {"m_max": 0.5, "m_min": 0.2, "d_max": "batch"},
                "angular": {"alpha": 1.0, "margin": 0.5},
                "margin_kd_t": {"temperature": 4.0, "alpha": 0.95, "margin": 0.5},
                "hinton_kd": {"temperature": 4.0, "alpha": 0.95},
                "triplet_l2": {"m_max": 0.5, "m_min": 0.2, "images_per_identity": 18},
                "triplet_cos": {"m_max": 0.5, "m_min": 0.2, "images_per_identity": 18},
                "arcface": {"margin": 0.5}, "embedding": {"distance": "cos"},
                "arcdistill": {"margin": 0.5, "scale": 64.0},
                "arcface_init": {"margin": 0.5, "scale": 64.0},
                "adadistill": {"margin": 0.5, "scale": 64.0}}[method]
    assert {k: getattr(config, k) for k in expected} == expected


def _run(capsys, *argv):
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["train", *argv])
    try:
        rc = cli.main(["train"])
    finally:
        flags.FLAGS.unparse_flags()
    err = capsys.readouterr().err.strip()
    return rc, err


def test_bad_flags_fail_in_one_line(capsys, tmp_path, synthetic, signal):
    base = [f"--data={synthetic}", f"--output_dir={tmp_path / 'run'}"]
    rc, err = _run(capsys, "--method=distill", *base)
    assert rc == 2 and err == ("error: --method: 'distill' is not one of margin_distillation, "
                               "arcface, arcdistill, arcface_init, adadistill, angular, "
                               "triplet_l2, triplet_cos, margin_kd_t, hinton_kd, embedding")
    rc, err = _run(capsys, "--method=margin_distillation", f"--data={tmp_path}/none.rec",
                   f"--teacher_signal={signal.directory}")
    assert rc == 2 and err == f"error: --data: {tmp_path}/none.rec does not exist"
    rc, err = _run(capsys, "--method=hinton_kd", *base, f"--teacher_signal={tmp_path}")
    assert rc == 2 and err.startswith(f"error: --teacher_signal: {tmp_path}: no manifest.json")
    rc, err = _run(capsys, "--method=margin_distillation", *base, "--backbone=tiny_test",
                   "--embedding_size=32", f"--teacher_signal={signal.directory}")
    assert rc == 2 and err.startswith("error: --embedding_size: the student's 32-d embedding "
                                      "does not match the teacher's 16-d")
    rc, err = _run(capsys, "--role=teacher", "--method=arcface", *base)
    assert rc == 2 and err == "error: --role: a teacher takes --head, not --method"
    rc, err = _run(capsys, "--method=arcface", *base, "--lr_steps=10,x")
    assert rc == 2 and err.startswith("error: --lr_steps: expected step numbers")
    assert not os.path.exists(tmp_path / "run")  # nothing was written
    assert "\n" not in err


def test_demo_teacher_recipe_is_the_shipped_teachers():
    """flags/demo_teacher.cfg trained savedmodels/demo_teacher (its README): the recipe parsed
    here is the config.json that training wrote beside the shipped teacher, field for field."""
    from tfmargin.train import teacher_centers

    config = validate(_parse(f"--flagfile={os.path.join(ROOT, 'flags', 'demo_teacher.cfg')}"),
                      check_files=False)
    with open(os.path.join(ROOT, "savedmodels", "demo_teacher", "config.json")) as f:
        shipped = json.load(f)
    # fields added to TrainConfig since (sample_rate) were at their defaults then
    assert set(shipped) <= set(config.to_dict())
    assert {**TrainConfig().to_dict(), **shipped} == config.to_dict()
    assert (config.role, config.backbone, config.head, config.scale) == (
        "teacher", "mbf", "arcface", "auto")
    centers = teacher_centers(os.path.join(ROOT, "savedmodels", "demo_teacher", "classifier.keras"))
    assert centers.shape == (512, 210)  # 70 % of the demo's 300 identities
    np.testing.assert_allclose(np.linalg.norm(centers.astype(np.float64), axis=0), 1.0, atol=1e-5)


def test_the_capacity_experiment_uses_the_demo_teachers_recipe():
    """flags/teacher_iresnet18_synthetic.cfg differs from the demo teacher's recipe only in
    the network, the data and where it writes: the comparison it is for needs one recipe."""
    def fields(name):
        return validate(_parse(f"--flagfile={os.path.join(ROOT, 'flags', name)}"),
                        check_files=False).to_dict()

    demo, big = fields("demo_teacher.cfg"), fields("teacher_iresnet18_synthetic.cfg")
    differ = {k for k in demo if demo[k] != big[k]}
    assert differ == {"backbone", "data", "val_bin", "output_dir"}
    assert (big["backbone"], big["data"]) == ("iresnet18", "data/large/train.rec")
