"""The paper end to end on the embedded synthetic dataset: what `make demo` runs.

    from examples.demo import DemoConfig, run
    results = run(DemoConfig(methods=("margin_distillation", "arcface")))

Steps: generate the synthetic identities (tfmargin.datasets.synthetic) -> get the teacher (the
small one shipped in savedmodels/demo_teacher/, trained by this project's code on exactly this
data, or train one with `teacher="train"`) -> extract its signal (centers + embeddings,
tfmargin.distill) -> train each student method on the same batches, schedule and budget,
selecting on val.bin -> evaluate teacher and students on test.bin (insightface 10 folds,
TAR@FAR) -> export the student with the best *validation* accuracy to int8 TFLite and
evaluate that file too -> results.json, results.md and roc.png under `output_dir`.

With several seeds (flags/bench_synthetic.cfg) every method runs once per seed and the table
gives mean +- std of the test accuracy per method.
"""

import dataclasses
import json
import os
import shutil
import time

import numpy as np

from tfmargin.atomic import write_bytes, write_json
from tfmargin.train.registry import METHODS

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHIPPED_TEACHER = os.path.join(REPO, "savedmodels", "demo_teacher", "classifier.keras")
# Every registered method, the ArcFace control first: triplet distillation fine-tunes an ArcFace
# student (Feng et al.), so the demo trains that one first.
ORDER = ("arcface", *(m for m in METHODS if m != "arcface"))


@dataclasses.dataclass
class DemoConfig:
    output_dir: str = "savedmodels/demo"
    data_dir: str = "data/demo"
    # the synthetic dataset (the shipped teacher was trained on exactly these settings)
    identities: int = 300
    images_per_identity: int = 20
    data_seed: int = 0
    difficulty: str = "medium"
    # the teacher: a classifier .keras (backbone + ArcFace head), or "train"
    teacher: str = SHIPPED_TEACHER
    # --teacher=train follows flags/demo_teacher.cfg (the shipped teacher's recipe)
    teacher_backbone: str = "mbf"
    teacher_steps: int = 1500
    teacher_batch_size: int = 64
    teacher_softmax_warmup_steps: int = 150
    teacher_margin_ramp_steps: int = 450
    # students: same backbone, batches, schedule and budget for every method
    methods: tuple = ("margin_distillation", "arcdistill", "arcface")
    student_backbone: str = "mobilefacenet"
    seeds: tuple = (0,)
    batch_size: int = 32
    steps: int = 128
    steps_per_epoch: int = 64
    lr: float = 0.1
    lr_warmup_steps: int = 10
    # every margin-based student: the same scale, warm-up and ramp (docs/training.md)
    scale: float | str = "auto"
    softmax_warmup_steps: int = 0
    margin_ramp_steps: int = 0
    # export
    export_int8: bool = True
    calibration_images: int = 200

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["methods"], d["seeds"] = list(self.methods), list(self.seeds)
        return d


def _same_dataset(info, config):
    from tfmargin.datasets.synthetic import resolve_difficulty

    total = max(end for _, end in info.get("identities", {}).values()) if isinstance(
        info.get("identities"), dict) else None
    return (info.get("seed") == config.data_seed and total == config.identities
            and info.get("images_per_identity") == config.images_per_identity
            and info.get("difficulty") == dataclasses.asdict(resolve_difficulty(config.difficulty)))


def ensure_dataset(config, log=print):
    """Generate the synthetic dataset into config.data_dir unless the same one is there."""
    from tfmargin.datasets.synthetic import write_dataset

    info_path = os.path.join(config.data_dir, "synthetic.json")
    if os.path.exists(info_path):
        with open(info_path) as f:
            info = json.load(f)
        if _same_dataset(info, config):
            log(f"[demo] data: reusing {config.data_dir}")
            return info
    log(f"[demo] data: generating {config.identities} identities x "
        f"{config.images_per_identity} images into {config.data_dir}")
    return write_dataset(config.data_dir, config.identities, config.images_per_identity,
                         seed=config.data_seed, difficulty=config.difficulty,
                         progress=log is print)


def _schedule(config, seed):
    from tfmargin.train import TrainConfig

    return TrainConfig(
        data=os.path.join(config.data_dir, "train.rec"),
        val_bin=os.path.join(config.data_dir, "val.bin"),
        batch_size=config.batch_size, steps=config.steps, steps_per_epoch=config.steps_per_epoch,
        eval_every=config.steps_per_epoch, lr=config.lr, lr_schedule="cosine",
        lr_warmup_steps=config.lr_warmup_steps, seed=seed, verbose=0)


def ensure_teacher(config, log=print):
    """Path of the teacher classifier (.keras): the shipped one, or one trained here."""
    if config.teacher != "train":
        if not os.path.isfile(config.teacher):
            raise FileNotFoundError(f"--teacher: {config.teacher} does not exist (use "
                                    "--teacher=train to train one)")
        return config.teacher
    from tfmargin.train import train

    out = os.path.join(config.output_dir, "teacher")
    log(f"[demo] teacher: training {config.teacher_backbone} with ArcFace for "
        f"{config.teacher_steps} steps of {config.teacher_batch_size}")
    result = train(_schedule(config, config.data_seed).replace(
        role="teacher", backbone=config.teacher_backbone, steps=config.teacher_steps,
        batch_size=config.teacher_batch_size, steps_per_epoch=config.teacher_steps,
        eval_every=config.teacher_steps, scale="auto",
        lr_warmup_steps=config.teacher_steps // 30,
        softmax_warmup_steps=config.teacher_softmax_warmup_steps,
        margin_ramp_steps=config.teacher_margin_ramp_steps, flip=True, output_dir=out),
        log=log)
    return result.paths["classifier"]


def ensure_signal(config, teacher_path, log=print):
    """The teacher signal for config.data_dir, re-extracted unless a matching one is there."""
    from tfmargin.distill import ensure_teacher_signal

    return ensure_teacher_signal(
        teacher_path, os.path.join(config.data_dir, "train.rec"),
        os.path.join(config.output_dir, "teacher_signal"), seed=config.data_seed,
        log=lambda message: log(f"[demo] {message}"))


def train_students(config, signal, log=print):
    """{(method, seed): {"result": TrainResult, "seconds", "backbone": selected .keras}}."""
    from tfmargin.train import train
    from tfmargin.train.config import warmup_capable

    runs = {}
    methods = sorted(config.methods, key=ORDER.index)
    for seed in config.seeds:
        for method in methods:
            name = method if len(config.seeds) == 1 else f"{method}-seed{seed}"
            out = os.path.join(config.output_dir, "students", name)
            if os.path.isdir(out):
                shutil.rmtree(out)  # a fresh run, not a resumption of an older recipe
            recipe = _schedule(config, seed).replace(
                method=method, backbone=config.student_backbone, output_dir=out,
                teacher_signal=signal.directory,  # the ArcFace control reads the same shards
                scale=config.scale)
            if warmup_capable(recipe):
                recipe = recipe.replace(softmax_warmup_steps=config.softmax_warmup_steps,
                                        margin_ramp_steps=config.margin_ramp_steps)
            if method.startswith("triplet"):
                recipe = recipe.replace(init_backbone=runs[("arcface", seed)]["backbone"])
            log(f"[demo] student {name}: {config.steps} steps of {config.batch_size}")
            started = time.perf_counter()
            result = train(recipe, signal=signal, log=log)
            seconds = time.perf_counter() - started
            selected = result.paths.get("best_backbone", result.paths["backbone"])
            runs[(method, seed)] = {"result": result, "seconds": seconds, "backbone": selected,
                                    "name": name}
            val = result.best["accuracy"] if result.best else float("nan")
            log(f"[demo] student {name}: {seconds:.0f} s, val accuracy {100 * val:.2f} % "
                f"(step {result.best['step'] if result.best else '-'})")
    return runs


def _row(label, method, seed, result, val=None, seconds=None, model=None):
    return {"model": label, "method": method, "seed": seed, "val_accuracy": val,
            "test_accuracy": result.accuracy, "test_accuracy_std": result.accuracy_std,
            "tar_at_far": {f"{far:g}": v for far, v in result.tar_at_far.items()},
            "train_seconds": seconds, "artifact": model}


def run(config=None, log=print):
    """Run the demo; returns the results dict that is also written to results.json."""
    from tfmargin.evaluate import evaluate_sets, load_sets, plot_roc

    config = config or DemoConfig()
    started = time.perf_counter()
    timings = {}
    os.makedirs(config.output_dir, exist_ok=True)
    data_info = ensure_dataset(config, log)
    timings["data"] = time.perf_counter() - started

    t = time.perf_counter()
    teacher_path = ensure_teacher(config, log)
    signal = ensure_signal(config, teacher_path, log)
    timings["teacher"] = time.perf_counter() - t

    t = time.perf_counter()
    runs = train_students(config, signal, log)
    timings["students"] = time.perf_counter() - t

    t = time.perf_counter()
    sets = load_sets({"val": os.path.join(config.data_dir, "val.bin"),
                      "test": os.path.join(config.data_dir, "test.bin")})
    test = {"test": sets["test"]}
    rows, curves = [], {}
    from tfmargin.models import load_backbone

    teacher_backbone = load_backbone(teacher_path)
    teacher_eval = evaluate_sets(teacher_backbone, sets)
    rows.append(_row(f"teacher ({config.teacher_backbone}, ArcFace)", "teacher", None,
                     teacher_eval["test"], teacher_eval["val"].accuracy, model=teacher_path))
    curves["teacher"] = teacher_eval["test"]
    for (method, seed), r in runs.items():
        result = evaluate_sets(r["backbone"], test)["test"]
        val = r["result"].best["accuracy"] if r["result"].best else None
        rows.append(_row(f"student ({config.student_backbone}) {r['name']}", method, seed,
                         result, val, r["seconds"], r["backbone"]))
        if seed == config.seeds[0]:
            curves[method] = result
    timings["evaluation"] = time.perf_counter() - t

    export = None
    if config.export_int8 and runs:
        t = time.perf_counter()
        export = export_best(config, runs, rows, test, log)
        curves[f"{export['method']} int8 TFLite"] = export.pop("result")
        timings["export"] = time.perf_counter() - t

    timings["total"] = time.perf_counter() - started
    results = {"config": config.to_dict(), "data": data_info, "teacher": teacher_path,
               "teacher_signal": signal.directory, "rows": rows,
               "summary": summarize(rows), "export": export,
               "seconds": {k: round(v, 1) for k, v in timings.items()}}
    plot_roc(curves, os.path.join(config.output_dir, "roc.png"),
             title="synthetic test.bin: teacher and students")
    write_json(os.path.join(config.output_dir, "results.json"), results)
    write_bytes(os.path.join(config.output_dir, "results.md"), (format_results(results) + "\n").encode())
    return results


def export_best(config, runs, rows, test, log=print):
    """The student with the best validation accuracy -> int8 TFLite, evaluated on test."""
    from tfmargin.evaluate import evaluate_sets
    from tfmargin.export import export_tflite

    def val(item):
        best = item[1]["result"].best
        return best["accuracy"] if best else -1.0

    (method, seed), r = max(runs.items(), key=val)
    path = os.path.join(config.output_dir, "student_int8.tflite")
    log(f"[demo] export: {r['name']} (best validation accuracy) -> {path}")
    from tfmargin.export.card import card_from_run

    # the file carries its contract; cosine thresholds from the identification identities,
    # which no reported number uses (val.bin picks the student, test.bin scores it)
    held_out = os.path.join(config.data_dir, "identification.npz")
    export_tflite(r["backbone"], path, "int8",
                  representative=os.path.join(config.data_dir, "train.rec"),
                  num_images=config.calibration_images, seed=config.data_seed,
                  card={**card_from_run(r["backbone"]),
                        "note": "demo student trained on synthetic cartoon faces: it does not "
                                "recognise real people"},
                  threshold_set=held_out if os.path.exists(held_out) else None)
    result = evaluate_sets(path, test)["test"]
    rows.append(_row(f"student {r['name']}, int8 TFLite", method, seed, result, model=path))
    return {"method": method, "seed": seed, "path": path, "bytes": os.path.getsize(path),
            "result": result}


def summarize(rows):
    """{method: {"seeds", "mean", "std"}} of the test accuracy of the float students."""
    by = {}
    for row in rows:
        if row["seed"] is not None and not row["model"].endswith("TFLite"):
            by.setdefault(row["method"], []).append(row["test_accuracy"])
    return {m: {"seeds": len(v), "mean": float(np.mean(v)), "std": float(np.std(v))}
            for m, v in by.items()}


def _pct(x):
    return "-" if x is None else f"{100 * x:.2f}"


def format_results(results):
    """Markdown: the results table, the per-method summary when there are seeds, timings."""
    fars = ["0.01", "0.001"]
    lines = ["| model | val acc. (%) | test acc. (%) | TAR@FAR=1e-2 | TAR@FAR=1e-3 | train (s) |",
             "|---|---|---|---|---|---|"]
    for r in results["rows"]:
        tar = [_pct(r["tar_at_far"].get(f)) for f in fars]
        lines.append(f"| {r['model']} | {_pct(r['val_accuracy'])} | "
                     f"{_pct(r['test_accuracy'])} ± {_pct(r['test_accuracy_std'])} | "
                     f"{tar[0]} | {tar[1]} | "
                     f"{'-' if r['train_seconds'] is None else round(r['train_seconds'])} |")
    summary = results["summary"]
    if any(s["seeds"] > 1 for s in summary.values()):
        lines += ["", "| method | seeds | test accuracy (%), mean ± std over seeds |",
                  "|---|---|---|"]
        for m, s in sorted(summary.items(), key=lambda kv: -kv[1]["mean"]):
            lines.append(f"| {m} | {s['seeds']} | {100 * s['mean']:.2f} ± {100 * s['std']:.2f} |")
    c, sec = results["config"], results["seconds"]
    lines += ["", f"{c['identities']} synthetic identities x {c['images_per_identity']} images "
              f"(seed {c['data_seed']}, {c['difficulty']}); students: {c['student_backbone']}, "
              f"{c['steps']} steps of {c['batch_size']}, cosine LR {c['lr']}, selected on val.bin; "
              "test.bin: 10 folds, flip-sum, insightface protocol.",
              "Wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in sec.items()) + "."]
    if results["export"]:
        e = results["export"]
        lines.append(f"Exported: {e['path']} ({e['bytes'] / 1e6:.2f} MB, full int8).")
    return "\n".join(lines)
