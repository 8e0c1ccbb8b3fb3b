"""run_comparison(config): every arm at every seed, resumable run by run.

    from tfmargin.compare import CompareConfig, run_comparison
    results = run_comparison(CompareConfig(teacher="teacher.keras", data="data/train.rec", ...))

Order: seed by seed, every arm within a seed, so that a run stopped half-way leaves arms with
equal numbers of seeds. Each finished run is one JSON file under `output_dir/runs/<arm>/`
(its recipe, numbers and times), and results.json / results.md / results.png are rewritten
after each, so the tables always show every finished run. Rerunning the same command skips
the finished runs, resumes an interrupted student from its last epoch (the training loop's
BackupAndRestore) and refuses results written under a different recipe.
"""

import json
import os
import time

from tfmargin.atomic import write_json
from tfmargin.compare.arms import get_arm
from tfmargin.compare.config import CompareError
from tfmargin.compare.held_out import evaluate_held_out, load_held_out
from tfmargin.compare.report import write_results


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None


def run_path(config, arm, seed):
    return os.path.join(config.output_dir, "runs", arm, f"seed{seed}.json")


def _teacher(config, held, log):
    """The teacher's description and numbers on the held-out sets (cached by its sha256)."""
    from tfmargin.distill.teacher import Teacher

    info = Teacher.resolve(config.teacher).describe()
    path = os.path.join(config.output_dir, "teacher.json")
    cached = _read_json(path)
    if cached and cached.get("sha256") == info["sha256"] and "metrics" in cached:
        return cached
    log(f"[compare] teacher: evaluating {config.teacher}")
    from tfmargin.models import load_backbone

    info["metrics"] = evaluate_held_out(load_backbone(config.teacher), held)
    write_json(path, info)
    return info


def _md_mean(config, signal, log):
    from tfmargin.distill import mean_teacher_margin

    path = os.path.join(config.output_dir, "md_mean_margin.json")
    key = {"signal": signal.manifest["shards"][0]["sha256"], "m_max": config.m_max,
           "m_min": config.m_min, "batch_size": config.batch_size}
    cached = _read_json(path)
    if cached and cached.get("key") == key:
        return cached["margin"]
    margin = mean_teacher_margin(signal, config.m_max, config.m_min,
                                 batch_size=config.batch_size)
    log(f"[compare] MarginDistillation's mean margin on this data: {margin:.4f} rad")
    write_json(path, {"key": key, "margin": margin})
    return margin


def _finished_student(recipe):
    """The student's backbone when an earlier invocation finished training it."""
    out = recipe.output_dir
    backbone = os.path.join(out, "backbone.keras")
    if os.path.isdir(os.path.join(out, "backup")) or not os.path.isfile(backbone):
        return None
    return backbone if _read_json(os.path.join(out, "config.json")) == recipe.to_dict() else None


def run_one(config, arm, seed, signal, md_mean, held, log=print):
    """Train and evaluate one student; returns (and writes) its run record."""
    from tfmargin.train import train

    recipe = config.recipe(arm, seed, signal.directory, md_mean, signal.embedding_size)
    path = run_path(config, arm.name, seed)
    done = _read_json(path)
    if done is not None:
        if done.get("recipe") != recipe.to_dict():
            raise CompareError(f"output_dir: {path} holds a run of another recipe; give a new "
                               "--output_dir (and --work_dir) or remove that file")
        return done
    started = time.perf_counter()
    backbone = _finished_student(recipe)
    resumed = None
    if backbone is None:
        import keras

        log(f"[compare] {arm.name} seed {seed}: {recipe.steps} steps of {recipe.batch_size}")
        keras.backend.clear_session()  # dozens of runs in one process: free the last one's graph
        result = train(recipe, signal=signal, log=log)
        backbone, resumed = result.paths["backbone"], result.start_step or None
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    metrics = evaluate_held_out(backbone, held)
    history = os.path.join(recipe.output_dir, "history.csv")
    record = {"arm": arm.name, "method": arm.method, "seed": seed, "recipe": recipe.to_dict(),
              "metrics": metrics, "train_seconds": round(train_seconds, 1),
              "eval_seconds": round(time.perf_counter() - started, 1),
              "resumed_at_step": resumed, "history": os.path.abspath(history)}
    write_json(path, record)
    log(f"[compare] {arm.name} seed {seed}: accuracy {100 * metrics['accuracy']:.2f}, "
        f"TAR@1e-4 {100 * metrics['tar@1e-4']:.2f}, rank-1 {100 * metrics['rank1']:.2f} "
        f"({record['train_seconds']:.0f} s training)")
    return record


def collect_runs(config):
    """{arm: {seed: record}} of the finished runs on disk, for the configured arms and seeds."""
    runs = {}
    for name in config.arms:
        for seed in config.seeds:
            record = _read_json(run_path(config, name, seed))
            if record is not None:
                runs.setdefault(name, {})[seed] = record
    return runs


def run_comparison(config, log=print):
    """Run (or resume) the comparison; returns the results dict written to results.json."""
    from tfmargin.distill import ensure_teacher_signal

    config.validate()
    os.makedirs(config.output_dir, exist_ok=True)
    signal = ensure_teacher_signal(config.teacher, config.data,
                                   os.path.join(config.work_dir, "teacher_signal"), log=log)
    held = load_held_out(config.test_bin, config.identification)
    teacher = _teacher(config, held, log)
    md_mean = _md_mean(config, signal, log)
    context = {"teacher": teacher, "held_out": held.describe(), "md_mean_margin": md_mean,
               "signal": signal.directory}
    results = write_results(config, collect_runs(config), context)
    # an arm that fine-tunes another arm's student runs after it
    order = sorted(config.arms, key=lambda name: get_arm(name).init_from is not None)
    for seed in config.seeds:
        for name in order:
            run_one(config, get_arm(name), seed, signal, md_mean, held, log)
            results = write_results(config, collect_runs(config), context)
    return results
