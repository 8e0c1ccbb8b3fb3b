"""The comparison end to end at toy size (a tiny teacher and students on the shared synthetic
set): every arm at every seed, results recomputed from the per-run files, resumption, and the
refusal to mix recipes."""

import json
import os

import numpy as np
import pytest

from tests.train import tiny
from tfmargin.compare import CompareConfig, CompareError, get_arm, run_comparison
from tfmargin.compare.run import _held_out

ARMS = ("arcface", "arcdistill_md_mean", "margin_distillation")


@pytest.fixture(scope="module")
def setup(synthetic, tmp_path_factory):
    import keras

    from tfmargin.train import TrainConfig, build_teacher

    tiny.register()
    keras.utils.set_random_seed(3)
    root = tmp_path_factory.mktemp("compare")
    teacher = build_teacher(TrainConfig(role="teacher", backbone=tiny.NAME, embedding_size=16,
                                        data=str(synthetic)), num_classes=14)
    teacher.model.save(root / "teacher.keras")
    config = CompareConfig(
        output_dir=str(root / "out"), work_dir=str(root / "work"),
        teacher=str(root / "teacher.keras"), data=str(synthetic / "train.rec"),
        val_bin=str(synthetic / "val.bin"), test_bin=str(synthetic / "test.bin"),
        identification=str(synthetic / "identification.npz"), arms=ARMS, seeds=(0, 1),
        backbone=tiny.NAME, batch_size=10, steps=2, steps_per_epoch=1, lr=0.05,
        lr_warmup_steps=0, softmax_warmup_steps=1, margin_ramp_steps=0, deterministic=False,
        verbose=0)
    logs = []
    with pytest.warns(Warning):  # the toy held-out sets are smaller than LFW's layout
        results = run_comparison(config, log=logs.append)
    return config, results, logs


def _run_file(config, arm, seed):
    with open(os.path.join(config.output_dir, "runs", arm, f"seed{seed}.json")) as f:
        return json.load(f)


def test_every_arm_every_seed(setup):
    config, results, logs = setup
    assert results["status"] == {"finished_runs": 6, "total_runs": 6, "complete": True}
    assert sum("steps of 10" in line for line in logs) == 6
    for name in ("results.json", "results.md", "results.png"):
        assert os.path.isfile(os.path.join(config.output_dir, name))
    with open(os.path.join(config.output_dir, "results.json")) as f:
        assert json.load(f)["arms"].keys() == set(ARMS)


def test_summary_is_recomputed_from_run_files(setup):
    config, results, _ = setup
    for arm in ARMS:
        runs = [_run_file(config, arm, s) for s in (0, 1)]
        for metric in ("accuracy", "tar@1e-4", "rank1"):
            values = [r["metrics"][metric] for r in runs]
            s = results["arms"][arm]["mean"][metric]
            assert s["mean"] == pytest.approx(np.mean(values), abs=1e-15)
            half = 12.706 * np.std(values, ddof=1) / np.sqrt(2)  # t(0.975, 1), published
            assert s["high"] - s["mean"] == pytest.approx(half, abs=1e-4 * half + 1e-15)
            if arm != "arcface":
                control = [_run_file(config, "arcface", s)["metrics"][metric] for s in (0, 1)]
                d = results["arms"][arm]["vs_control"][metric]
                assert d["mean"] == pytest.approx(np.mean(np.subtract(values, control)),
                                                  abs=1e-15)
    assert results["arms"]["arcface"]["vs_control"] is None


def test_contrasts_are_paired_differences_of_the_run_files(setup):
    config, results, _ = setup
    (x,) = [c for c in results["contrasts"] if c["minus"] == "arcdistill_md_mean"]
    assert x["arm"] == "margin_distillation"
    for metric in ("accuracy", "tar@1e-3", "rank1"):
        diffs = [_run_file(config, "margin_distillation", s)["metrics"][metric]
                 - _run_file(config, "arcdistill_md_mean", s)["metrics"][metric] for s in (0, 1)]
        d = x["difference"][metric]
        assert d["mean"] == pytest.approx(np.mean(diffs), abs=1e-15)
        assert d["seeds"] == [0, 1]
    # the other contrasts need arms this comparison does not run
    assert len(results["contrasts"]) == 1
    with open(os.path.join(config.output_dir, "results.md")) as f:
        assert "| margin_distillation - arcdistill_md_mean | 2 |" in f.read()


def test_report_only_needs_no_teacher(setup, tmp_path):
    import shutil

    from tfmargin.compare.run import report_results

    config, _, _ = setup
    shutil.copytree(config.output_dir, tmp_path / "out")
    with open(os.path.join(config.output_dir, "results.json")) as f:
        kept = json.load(f)
    again = report_results(config.replace(output_dir=str(tmp_path / "out"),
                                          teacher="gone.keras"), log=lambda *a: None)
    assert again["arms"] == kept["arms"] and again["contrasts"] == kept["contrasts"]
    assert again["teacher"] == kept["teacher"] and again["machine"] == kept["machine"]
    with pytest.raises(CompareError, match="holds no results.json"):
        report_results(config.replace(output_dir=str(tmp_path / "empty")))


def test_arms_differ_only_in_what_they_compare(setup):
    config, results, _ = setup
    with open(os.path.join(config.output_dir, "md_mean_margin.json")) as f:
        md_mean = json.load(f)["margin"]
    assert md_mean == results["md_mean_margin"]
    for seed in (0, 1):
        recipes = {a: _run_file(config, a, seed)["recipe"] for a in ARMS}
        assert recipes["arcdistill_md_mean"]["margin"] == md_mean
        assert recipes["arcdistill_md_mean"]["method"] == "arcdistill"
        same = lambda r: {k: v for k, v in r.items()  # noqa: E731
                          if k not in ("method", "margin", "output_dir")}
        assert same(recipes["arcface"]) == same(recipes["margin_distillation"]) == same(
            recipes["arcdistill_md_mean"])
        # one signal for all, so one batch stream per seed
        assert len({r["teacher_signal"] for r in recipes.values()}) == 1
        assert recipes["arcface"]["seed"] == seed


def test_arms_start_from_the_same_weights(setup, synthetic):
    import keras

    from tfmargin.compare import get_arm
    from tfmargin.distill import load_teacher_signal
    from tfmargin.train.build import build_student

    config, results, _ = setup
    signal = load_teacher_signal(results["signal"])
    first = {}
    for arm in ARMS:  # as train() does: seed, then build
        recipe = config.recipe(get_arm(arm), 1, signal.directory, 0.3, signal.embedding_size)
        keras.utils.set_random_seed(recipe.seed)
        weights = build_student(recipe, signal, signal.num_classes).backbone.get_weights()
        for a, b in zip(first.setdefault("w", weights), weights):
            np.testing.assert_array_equal(a, b)


def test_resumes_without_retraining(setup):
    config, results, _ = setup
    before = _run_file(config, "margin_distillation", 1)
    os.remove(os.path.join(config.output_dir, "runs", "margin_distillation", "seed1.json"))
    logs = []
    again = run_comparison(config, log=logs.append)
    assert not any("steps of" in line for line in logs)  # the student on disk is reused
    after = _run_file(config, "margin_distillation", 1)
    assert after["metrics"] == before["metrics"]
    assert again["arms"]["margin_distillation"]["mean"] == results["arms"][
        "margin_distillation"]["mean"]


def test_a_retrained_teacher_with_the_same_weights_keeps_the_runs(setup, tmp_path):
    """A new machine retrains the teacher bit for bit (--deterministic) but saves another
    file (a .keras holds its save time): the teacher is its weights, so every run stands, and
    records that named the teacher by its file still count."""
    import shutil

    from tfmargin.compare.run import _check, _Inputs
    from tfmargin.compare.teachers import Teachers
    from tfmargin.distill import load_teacher_signal, sha256_file
    from tfmargin.models import load_model

    config, _, _ = setup
    saved = tmp_path / "teacher.keras"
    load_model(config.teacher).save(saved)
    assert sha256_file(str(saved)) != sha256_file(config.teacher)
    teacher_json = os.path.join(config.output_dir, "teacher.json")
    before = json.load(open(teacher_json))
    out = tmp_path / "out"
    shutil.copytree(config.output_dir, out)
    again = config.replace(teacher=str(saved), output_dir=str(out))  # the signal: made again
    logs = []
    results_again = run_comparison(again, log=logs.append)
    assert any("teacher signal: re-extracting" in line for line in logs)
    assert not any("steps of" in line or "evaluating" in line for line in logs)
    with open(os.path.join(config.output_dir, "results.json")) as f:
        kept = json.load(f)["arms"]
    assert {a: r["per_seed"] for a, r in results_again["arms"].items()} == {
        a: r["per_seed"] for a, r in kept.items()}
    after = json.load(open(out / "teacher.json"))
    assert after["metrics"] == before["metrics"]
    assert set(after["files_sha256"]) == {before["sha256"], sha256_file(str(saved))}

    # a record that named the teacher by its file (as records did before) still counts
    signal = load_teacher_signal(results_again["signal"])
    held = _held_out(again)
    inputs = _Inputs(signal, held)
    inputs.teachers = Teachers.load(str(out))
    record = _run_file(again, "arcface", 0)
    recipe = again.recipe(get_arm("arcface"), 0, signal.directory, 0.3,
                          signal.embedding_size)
    older = {**record, "inputs": {**record["inputs"], "teacher": before["sha256"]}}
    assert _check(older, recipe, inputs.of(recipe), "seed0.json", inputs) is older
    other = {**record, "inputs": {**record["inputs"], "teacher": "0" * 64}}
    with pytest.raises(CompareError, match="another teacher"):
        _check(other, recipe, inputs.of(recipe), "seed0.json", inputs)


def test_a_new_teacher_takes_over_whole_seeds(setup, synthetic, tmp_path, monkeypatch):
    """A lost teacher that cannot be retrained bit for bit: its finished seeds stand, a new
    teacher runs the new seeds, the report shows both with their seeds, and a seed the old
    teacher left unfinished is refused (no seed mixes teachers). The output_dir predates
    teachers.json: its one teacher comes from teacher.json and md_mean_margin.json."""
    import keras

    from tfmargin.train import TrainConfig, build_teacher

    config, _, _ = setup
    monkeypatch.chdir(tmp_path)  # relative paths, as the shipped flagfile has
    teachers = []
    for seed in (5, 6):
        keras.utils.set_random_seed(seed)
        model = build_teacher(TrainConfig(role="teacher", backbone=tiny.NAME,
                                          embedding_size=16, data=str(synthetic)),
                              num_classes=14).model
        model.save(f"teacher{seed}.keras")
        teachers.append(f"teacher{seed}.keras")
    small = config.replace(output_dir="out", work_dir="work", arms=("arcface",
                           "arcdistill_md_mean"), seeds=(0,), teacher=teachers[0])
    first = run_comparison(small, log=lambda *a: None)
    os.remove("out/teachers.json")  # as a comparison from before teachers.json left it
    margin_1 = first["md_mean_margin"]
    from tfmargin.compare.teachers import Teachers

    Teachers.load("out")  # migrated and saved at once: teacher.json is about to change hands
    with open("out/teachers.json") as f:
        assert list(json.load(f)) == [first["teacher"]["weights_sha256"]]

    both = small.replace(seeds=(0, 1), teacher=teachers[1])
    logs = []
    results = run_comparison(both, log=logs.append)
    assert sum("steps of" in line for line in logs) == 2  # seed 1 only
    assert results["status"]["complete"]
    by_seed = {tuple(t["seeds"]): t for t in results["teachers"].values()}
    assert by_seed[(0,)]["weights_sha256"] == first["teacher"]["weights_sha256"]
    assert by_seed[(0,)]["metrics"] == first["teacher"]["metrics"]
    assert by_seed[(1,)]["weights_sha256"] == results["teacher"]["weights_sha256"]
    assert by_seed[(1,)]["weights_sha256"] != by_seed[(0,)]["weights_sha256"]
    md_arm = "arcdistill_md_mean"
    assert _run_file(both, md_arm, 0)["recipe"]["margin"] == margin_1
    assert _run_file(both, md_arm, 1)["recipe"]["margin"] == results["md_mean_margin"]
    with open("out/results.md") as f:
        table = f.read()
    assert table.count("| teacher (seeds ") == 2 and "| teacher (seeds 0; " in table
    assert f"{margin_1:.4f} rad for seeds 0" in table
    # before the new teacher finishes a run, the table shows the teacher of the runs
    from tfmargin.compare.report import format_markdown

    new = results["teacher"]["weights_sha256"]
    only_old = {**results, "teachers": {k: {**t, "seeds": [] if k == new else t["seeds"]}
                                        for k, t in results["teachers"].items()}}
    old_row = format_markdown(only_old).split("\n")[2]
    assert old_row.startswith("| teacher (") and "seeds" not in old_row
    assert f"{100 * by_seed[(0,)]['metrics']['accuracy']:.2f}" in old_row
    assert f"mean margin: {margin_1:.4f} rad." in format_markdown(only_old)

    # seed 0 left unfinished by the first teacher: refused, nothing rewritten
    os.remove(os.path.join("out", "runs", md_arm, "seed0.json"))
    before = open("out/results.md").read()
    with pytest.raises(CompareError, match=r"seeds: seed 0 was started with another teacher "
                                           r".*move out/runs/\*/seed0.json aside"):
        run_comparison(both, log=lambda *a: None)
    assert open("out/results.md").read() == before


def test_a_lost_starting_student_is_trained_again(setup, tmp_path, monkeypatch):
    """Students are not committed: on a new machine an arm that fine-tunes another arm's
    student trains that student again, checks its numbers against its record, and says so;
    the finished fine-tuned runs keep counting without their starting student's file."""
    import shutil

    from tfmargin.compare import ARMS, Arm

    config, _, _ = setup
    monkeypatch.setitem(ARMS, "arcface_longer",
                        Arm("arcface_longer", "arcface", init_from="arcface", lr=0.01))
    config = config.replace(arms=("arcface", "arcface_longer"), seeds=(0,),
                            output_dir=str(tmp_path / "out"), work_dir=str(tmp_path / "work"))
    run_comparison(config, log=lambda *a: None)
    assert "starting_student" not in _run_file(config, "arcface_longer", 0)
    starting = config.student_dir("arcface", 0)
    shutil.rmtree(starting)
    logs = []
    run_comparison(config, log=logs.append)  # the finished run stands without the file
    assert not any("steps of" in line for line in logs)
    os.remove(os.path.join(config.output_dir, "runs", "arcface_longer", "seed0.json"))
    shutil.rmtree(config.student_dir("arcface_longer", 0))
    # the ArcFace run's record as a machine with other numbers would have left it
    control = os.path.join(config.output_dir, "runs", "arcface", "seed0.json")
    record = _run_file(config, "arcface", 0)
    record["metrics"]["accuracy"] = -1.0
    with open(control, "w") as f:
        json.dump(record, f)
    logs = []
    results = run_comparison(config, log=logs.append)
    assert any("its starting arcface student is not on disk" in line for line in logs)
    assert sum("steps of" in line for line in logs) == 2
    again = _run_file(config, "arcface_longer", 0)
    start = again["starting_student"]
    assert start["matches_record"] is False and start["metrics"]["accuracy"] >= 0
    assert any("differ from its record (accuracy" in line for line in logs)
    assert results["arms"]["arcface_longer"]["retrained_start"] == {"0": False}
    with open(os.path.join(config.output_dir, "results.md")) as f:
        assert ("`arcface_longer` seed 0 started from a `arcface` student trained again "
                "(students are not kept across machines), whose numbers differ from its "
                "record") in f.read()


def test_refuses_to_mix_recipes(setup, tmp_path):
    config, _, _ = setup
    before = open(os.path.join(config.output_dir, "results.md")).read()
    with pytest.raises(CompareError, match=r"output_dir: .*seed0.json holds a run of another "
                                           r"recipe"):
        run_comparison(config.replace(lr=0.01), log=lambda *a: None)
    # other held-out identities: the same recipe, but the numbers would measure other people
    with np.load(config.identification) as z:
        arrays = dict(z)
    arrays["probe"] = arrays["probe"][:, ::-1].copy()  # mirrored probes: another set
    np.savez(tmp_path / "other.npz", **arrays)
    with pytest.raises(CompareError, match=r"holds a run of another held_out"):
        run_comparison(config.replace(identification=str(tmp_path / "other.npz")),
                       log=lambda *a: None)
    # nothing was rewritten on the way
    assert open(os.path.join(config.output_dir, "results.md")).read() == before
    # what does not change the numbers does not invalidate them
    logs = []
    run_comparison(config.replace(verbose=1), log=logs.append)
    assert not any("steps of" in line for line in logs)


def test_a_student_of_another_recipe_starts_over(setup):
    from tfmargin.compare import get_arm, run_one
    from tfmargin.compare.run import _Inputs, _held_out
    from tfmargin.distill import load_teacher_signal

    config, results, _ = setup
    other = config.replace(output_dir=config.output_dir + "-other", lr=0.02)
    signal = load_teacher_signal(results["signal"])
    held = _held_out(config)
    arm = get_arm("arcface")
    # the directory other would train in holds the first config's finished student
    logs = []
    record = run_one(other, arm, 0, signal, 0.3, held, _Inputs(signal, held), logs.append)
    assert any("holds another recipe's student; starting it over" in line for line in logs)
    assert any("steps of" in line for line in logs)
    assert record["recipe"]["lr"] == 0.02
    with open(os.path.join(other.student_dir("arcface", 0), "config.json")) as f:
        assert json.load(f)["lr"] == 0.02


@pytest.mark.parametrize("changes,message", [
    ({"arms": ("arcdistill",)}, "arms: the control 'arcface' is missing"),
    ({"arms": ("arcface", "nope")}, "arms: unknown arm 'nope'"),
    ({"arms": ("triplet_cos",)}, "arms: triplet_cos fine-tunes the arcface arm's student"),
    ({"arms": ("arcface", "arcface")}, "arms: an arm or a seed is listed twice"),
    ({"seeds": ()}, "seeds: no seeds given"),
    ({"teacher": "missing.keras"}, "teacher: missing.keras does not exist"),
    ({"steps_per_epoch": 3}, "steps_per_epoch: 3 does not divide steps"),
])
def test_bad_settings_name_their_field(setup, changes, message):
    config, _, _ = setup
    with pytest.raises(CompareError, match=message):
        config.replace(**changes).validate()


def test_a_finished_run_survives_a_moved_checkout_but_not_another_recipe(tmp_path):
    """The record's teacher-signal path is absolute; moving the checkout changes it and nothing
    else, so the run stands. Any other recipe field, or another input checksum, refuses it."""
    from tfmargin.compare.run import CompareError, _check
    from tfmargin.distill import sha256_file

    class Recipe:
        def __init__(self, output_dir="", **kw):
            self.kw, self.output_dir = kw, output_dir
            self.init_backbone = kw.get("init_backbone", "")

        def to_dict(self):
            return dict(self.kw)

    inputs = {"teacher_signal": "abc", "held_out": "def"}
    record = {"recipe": {"teacher_signal": "/old/runs/compare/teacher_signal", "lr": 0.1,
                         "verbose": 2}, "inputs": inputs}
    moved = Recipe(teacher_signal="/new/runs/compare/teacher_signal", lr=0.1, verbose=0)
    assert _check(record, moved, inputs, "seed0.json") is record
    # a field added to TrainConfig later (at its default) does not orphan older records
    newer = Recipe(teacher_signal="/new/runs/compare/teacher_signal", lr=0.1, sample_rate=1.0)
    assert _check(record, newer, inputs, "seed0.json") is record
    with pytest.raises(CompareError, match="another recipe"):
        _check(record, Recipe(teacher_signal="/old/runs/compare/teacher_signal", lr=0.2),
               inputs, "seed0.json")
    with pytest.raises(CompareError, match="another teacher_signal"):
        _check(record, moved, {**inputs, "teacher_signal": "xyz"}, "seed0.json")

    # A fine-tuned run's starting student: compared while it is the file the run started from;
    # not once it is gone (a new machine), or trained again there (another file, marked).
    init = tmp_path / "arcface" / "backbone.keras"
    init.parent.mkdir()
    init.write_bytes(b"retrained")
    tuned = {"recipe": {"lr": 0.001, "init_backbone": str(init)},
             "inputs": {**inputs, "init_backbone": "sha of the first file"}}
    again = Recipe(lr=0.001, init_backbone=str(init))
    now = {**inputs, "init_backbone": sha256_file(str(init))}
    with pytest.raises(CompareError, match="another init_backbone"):
        _check(tuned, again, now, "seed0.json")
    assert _check(tuned, again, {**inputs, "init_backbone": None}, "seed0.json") is tuned
    (init.parent / "retrained.json").write_text("{}")
    assert _check(tuned, again, now, "seed0.json") is tuned

    # A student trained before the move, not yet evaluated: reused, unless its inputs changed.
    from tfmargin.compare.run import _prepare_student

    student = tmp_path / "student"
    student.mkdir()
    (student / "backbone.keras").write_bytes(b"weights")
    (student / "finished.json").write_text(json.dumps(
        {**record, "backbone_sha256": sha256_file(str(student / "backbone.keras")),
         "train_seconds": 5.0}))
    here = Recipe(str(student), teacher_signal="/new/runs/compare/teacher_signal", lr=0.1)
    assert _prepare_student(here, inputs, print) == (str(student / "backbone.keras"), 5.0)
    logs = []
    assert _prepare_student(here, {**inputs, "held_out": "zzz"}, logs.append) is None
    assert "holds another recipe's student" in logs[0]
    assert os.listdir(student) == ["inputs.json"]  # the new student's ties, before it trains
    # an older record without its checksums ties to the signal's path as before
    (student / "backbone.keras").write_bytes(b"weights")
    (student / "finished.json").write_text(json.dumps(
        {"recipe": record["recipe"], "train_seconds": 5.0,
         "backbone_sha256": sha256_file(str(student / "backbone.keras"))}))
    (student / "inputs.json").unlink()
    assert _prepare_student(here, inputs, logs.append) is None  # another path: not reused
    old_place = Recipe(str(student), teacher_signal="/old/runs/compare/teacher_signal", lr=0.1,
                       verbose=2)
    (student / "backbone.keras").write_bytes(b"weights")
    (student / "finished.json").write_text(json.dumps(
        {"recipe": record["recipe"], "train_seconds": 5.0,
         "backbone_sha256": sha256_file(str(student / "backbone.keras"))}))
    assert _prepare_student(old_place, inputs, print) == (str(student / "backbone.keras"), 5.0)
