"""python -m tfmargin.cli.compare: the shipped recipe parses with the CLI's own flags, meets
the benchmark's rules (>= 5 seeds, the arms the question needs, one recipe for all), and flags
map onto CompareConfig."""

import os

import pytest
from absl import flags

from tfmargin.cli import compare as cli
from tfmargin.compare import CONTROL, get_arm

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECIPE = os.path.join(ROOT, "flags", "compare_synthetic.cfg")


def _parse(*argv):
    fv = flags.FlagValues()
    cli.define_flags(fv)
    fv(["compare", *argv])
    return cli.config_from_flags(fv)


def test_recipe_meets_the_benchmarks_rules():
    config = _parse(f"--flagfile={RECIPE}").validate(check_files=False)
    assert len(config.seeds) >= 5
    assert {"arcface", "arcface_init", "arcdistill", "arcdistill_md_mean",
            "margin_distillation", "adadistill", "hinton_kd", "margin_kd_t", "angular",
            "embedding", "triplet_cos", "triplet_l2"} <= set(config.arms)
    assert config.arms[0] == CONTROL and config.deterministic
    recipes = {a: config.recipe(get_arm(a), 0, "sig", 0.31).to_dict() for a in config.arms}
    for name, r in recipes.items():  # one schedule, one data stream, one backbone
        triplet = name.startswith("triplet")
        for key in ("backbone", "steps", "lr_schedule", "lr_warmup_steps", "weight_decay",
                    "weight_decay_mode", "seed", "data", "teacher_signal", "scale",
                    "embedding_size", *(() if triplet else ("batch_size", "lr"))):
            assert r[key] == recipes[CONTROL][key], (name, key)
        if triplet:  # Feng et al.: fine-tune the ArcFace student at 1e-3, K = 18
            assert (r["lr"], r["images_per_identity"], r["batch_size"]) == (0.001, 18, 72)
            assert r["init_backbone"] == os.path.join(config.student_dir(CONTROL, 0),
                                                      "backbone.keras")
        if get_arm(name).method in ("arcface", "arcface_init", "arcdistill",
                                    "margin_distillation", "adadistill", "angular"):
            assert (r["softmax_warmup_steps"], r["margin_ramp_steps"]) == (40, 120), name
    assert recipes["arcdistill"]["margin"] == 0.5
    assert recipes["arcdistill_md_mean"]["margin"] == 0.31


def test_flags_reach_the_config():
    config = _parse("--arms=arcface,margin_distillation", "--seeds=3,4", "--scale=30",
                    "--steps=10", "--nodeterministic")
    assert config.arms == ("arcface", "margin_distillation") and config.seeds == (3, 4)
    assert (config.scale, config.steps, config.deterministic) == (30.0, 10, False)
    with pytest.raises(ValueError, match="seeds: expected integers"):
        _parse("--seeds=a")


def test_report_only_rebuilds_the_committed_results(tmp_path):
    """--report_only needs neither the teacher nor the data: from the committed run files it
    writes back the committed results.md, byte for byte (the README's table comes from it)."""
    import shutil
    import subprocess
    import sys

    shipped = os.path.join(ROOT, "savedmodels", "compare")
    out = tmp_path / "compare"
    shutil.copytree(shipped, out)
    os.remove(out / "results.md")
    done = subprocess.run(
        [sys.executable, "-m", "tfmargin.cli.compare", f"--flagfile={RECIPE}", "--report_only",
         f"--output_dir={out}", "--teacher=gone.keras", "--data=gone.rec"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    with open(os.path.join(shipped, "results.md")) as f:
        committed = f.read()
    assert (out / "results.md").read_text() == committed
    assert committed.rstrip("\n") in done.stdout
