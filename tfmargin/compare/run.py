"""run_comparison(config): every arm at every seed, resumable run by run.

    from tfmargin.compare import CompareConfig, run_comparison
    results = run_comparison(CompareConfig(teacher="teacher.keras", data="data/train.rec", ...))

Order: seed by seed, every arm within a seed, so that a run stopped half-way leaves arms with
equal numbers of seeds. Each finished run is one JSON file under `output_dir/runs/<arm>/`
(its recipe, the checksums of what it was trained and measured on, its numbers and times), and
results.json / results.md / results.png are rewritten after each, so the tables always show
every finished run.

Rerunning the same command skips the finished runs, resumes an interrupted student from its
last epoch (the training loop's BackupAndRestore), reuses a student whose training finished
before its evaluation (`finished.json` beside it), and starts a student over when its
directory holds another recipe. A run record made under another recipe, teacher signal,
held-out set or starting student is refused, before anything is written: results are never
mixed.
"""

import hashlib
import json
import os
import shutil
import time

from tfmargin.atomic import write_json
from tfmargin.compare.arms import get_arm
from tfmargin.compare.config import CompareError
from tfmargin.compare.held_out import evaluate_held_out, load_held_out
from tfmargin.compare.report import write_results

IGNORED = ("verbose",)  # recipe fields that do not change a run's numbers
# Records and students also ignore where the teacher signal lay: the path is absolute (a moved
# checkout would otherwise orphan every run) and its content is in the inputs' checksums.
RECORD_IGNORED = IGNORED + ("teacher_signal",)


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None


def run_path(config, arm, seed):
    return os.path.join(config.output_dir, "runs", arm, f"seed{seed}.json")


def _comparable(recipe, ignored=IGNORED):
    """A recipe as compared: a field TrainConfig gained after a run was recorded counts at its
    default (which is what that run used)."""
    from tfmargin.train.config import TrainConfig

    full = {**TrainConfig().to_dict(), **recipe}
    return {k: v for k, v in full.items() if k not in ignored}


def _digest(*parts):
    return hashlib.sha256("\n".join(map(str, parts)).encode()).hexdigest()


class _Inputs:
    """The checksums that tie a run to what it was trained and measured on."""

    def __init__(self, signal, held):
        from tfmargin.distill import sha256_file

        m = signal.manifest
        self.common = {
            "teacher_signal": _digest(m["centers"]["sha256"],
                                      *(s["sha256"] for s in m["shards"])),
            "teacher": m["teacher"].get("sha256") or m["teacher"].get("weights_sha256"),
            "held_out": _digest(*(sha256_file(p) for p in held.sources.values())),
        }

    def of(self, recipe):
        from tfmargin.distill import sha256_file

        init = recipe.init_backbone
        return {**self.common,
                "init_backbone": sha256_file(init) if init and os.path.isfile(init) else None}


def _check(record, recipe, inputs, path):
    if _comparable(record.get("recipe", {}), RECORD_IGNORED) != _comparable(recipe.to_dict(),
                                                                            RECORD_IGNORED):
        what = "another recipe"
    elif record.get("inputs") != inputs:
        changed = [k for k in inputs if (record.get("inputs") or {}).get(k) != inputs[k]]
        what = f"another {', '.join(changed) or 'input'}"
    else:
        return record
    raise CompareError(f"output_dir: {path} holds a run of {what}; give a new --output_dir (and "
                       "--work_dir) or remove that file")


def _teacher(config, held, inputs, log):
    """The teacher's description and numbers on the held-out sets (cached by the teacher's and
    the sets' checksums)."""
    from tfmargin.distill.teacher import Teacher

    info = Teacher.resolve(config.teacher).describe()
    info["held_out"] = inputs.common["held_out"]
    path = os.path.join(config.output_dir, "teacher.json")
    cached = _read_json(path)
    if cached and all(cached.get(k) == info[k] for k in ("sha256", "held_out")) \
            and "metrics" in cached:
        return cached
    log(f"[compare] teacher: evaluating {config.teacher}")
    from tfmargin.models import load_backbone

    info["metrics"] = evaluate_held_out(load_backbone(config.teacher), held)
    write_json(path, info)
    return info


def _md_mean(config, signal, inputs, log):
    from tfmargin.distill import mean_teacher_margin

    path = os.path.join(config.output_dir, "md_mean_margin.json")
    key = {"signal": inputs.common["teacher_signal"], "m_max": config.m_max,
           "m_min": config.m_min, "batch_size": config.batch_size}
    cached = _read_json(path)
    if cached and cached.get("key") == key:
        return cached["margin"]
    margin = mean_teacher_margin(signal, config.m_max, config.m_min,
                                 batch_size=config.batch_size)
    log(f"[compare] MarginDistillation's mean margin on this data: {margin:.4f} rad")
    write_json(path, {"key": key, "margin": margin})
    return margin


TIES = "inputs.json"  # beside a student: the checksums it trains on (moved checkouts resume)


def _same_student(recorded, recipe, recorded_ties, ties):
    """A student directory's recipe is this one: with its inputs' checksums recorded, wherever
    the teacher signal lies now; without them (older runs), at the same signal path too."""
    if recorded_ties is not None:
        return recorded_ties == ties and _comparable(recorded, RECORD_IGNORED) == _comparable(
            recipe.to_dict(), RECORD_IGNORED)
    return _comparable(recorded) == _comparable(recipe.to_dict())


def _prepare_student(recipe, ties, log):
    """(backbone path, training seconds) of a student whose training finished earlier, else
    None; a directory holding another recipe's student is cleared first."""
    out = recipe.output_dir
    done = _read_json(os.path.join(out, "finished.json"))
    backbone = os.path.join(out, "backbone.keras")
    if done and _same_student(done.get("recipe", {}), recipe, done.get("inputs"), ties) \
            and os.path.isfile(backbone):
        from tfmargin.distill import sha256_file

        if sha256_file(backbone) == done.get("backbone_sha256"):
            return backbone, done.get("train_seconds", 0.0)
    started = _read_json(os.path.join(out, "config.json"))
    if os.path.isdir(out) and (started is None or not _same_student(
            started, recipe, _read_json(os.path.join(out, TIES)), ties)):
        log(f"[compare] {out}: holds another recipe's student; starting it over")
        shutil.rmtree(out)
    if not os.path.isdir(out):
        write_json(os.path.join(out, TIES), ties)
    return None


def _elapsed_callback(path):
    """A Keras callback keeping the training time of every invocation of a run in `path`, so
    that a resumed run reports its whole training time."""
    import keras

    class Elapsed(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.before = (_read_json(path) or {}).get("seconds", 0.0)
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            write_json(path, {"seconds": self.before + time.perf_counter() - self.started})

    return Elapsed()


def run_one(config, arm, seed, signal, md_mean, held, inputs, log=print):
    """Train and evaluate one student; returns (and writes) its run record."""
    from tfmargin.distill import sha256_file
    from tfmargin.train import train

    recipe = config.recipe(arm, seed, signal.directory, md_mean, signal.embedding_size)
    path = run_path(config, arm.name, seed)
    ties = inputs.of(recipe)
    done = _read_json(path)
    if done is not None:
        return _check(done, recipe, ties, path)
    finished = _prepare_student(recipe, ties, log)
    resumed = None
    if finished is None:
        import keras

        log(f"[compare] {arm.name} seed {seed}: {recipe.steps} steps of {recipe.batch_size}")
        keras.backend.clear_session()  # dozens of runs in one process: free the last one's graph
        elapsed = os.path.join(recipe.output_dir, "elapsed.json")
        result = train(recipe, signal=signal, log=log, callbacks=[_elapsed_callback(elapsed)])
        backbone, resumed = result.paths["backbone"], result.start_step or None
        train_seconds = (_read_json(elapsed) or {}).get("seconds", 0.0)
        write_json(os.path.join(recipe.output_dir, "finished.json"),
                   {"recipe": recipe.to_dict(), "inputs": ties,
                    "backbone_sha256": sha256_file(backbone), "train_seconds": train_seconds})
    else:
        backbone, train_seconds = finished
    started = time.perf_counter()
    metrics = evaluate_held_out(backbone, held)
    history = os.path.join(recipe.output_dir, "history.csv")
    record = {"arm": arm.name, "method": arm.method, "seed": seed, "recipe": recipe.to_dict(),
              "inputs": ties, "metrics": metrics, "train_seconds": round(train_seconds, 1),
              "eval_seconds": round(time.perf_counter() - started, 1),
              "resumed_at_step": resumed, "history": os.path.abspath(history)}
    write_json(path, record)
    log(f"[compare] {arm.name} seed {seed}: accuracy {100 * metrics['accuracy']:.2f}, "
        f"TAR@1e-4 {100 * metrics['tar@1e-4']:.2f}, rank-1 {100 * metrics['rank1']:.2f} "
        f"({record['train_seconds']:.0f} s training)")
    return record


def collect_runs(config, signal=None, md_mean=None, inputs=None):
    """{arm: {seed: record}} of the finished runs on disk, for the configured arms and seeds;
    with `signal`, `md_mean` and `inputs` every record is checked first (CompareError)."""
    runs = {}
    for name in config.arms:
        for seed in config.seeds:
            path = run_path(config, name, seed)
            record = _read_json(path)
            if record is None:
                continue
            if inputs is not None:
                recipe = config.recipe(get_arm(name), seed, signal.directory, md_mean,
                                       signal.embedding_size)
                _check(record, recipe, inputs.of(recipe), path)
            runs.setdefault(name, {})[seed] = record
    return runs


def _held_out(config):
    try:
        return load_held_out(config.test_bin, config.identification)
    except (ValueError, OSError) as e:
        field = "identification" if config.identification in str(e) else "test_bin"
        raise CompareError(f"{field}: {str(e).splitlines()[0]}") from None


def run_comparison(config, log=print):
    """Run (or resume) the comparison; returns the results dict written to results.json."""
    from tfmargin.distill import ensure_teacher_signal

    config.validate()
    held = _held_out(config)  # before the (long) signal extraction: a bad set fails at once
    os.makedirs(config.output_dir, exist_ok=True)
    signal = ensure_teacher_signal(config.teacher, config.data,
                                   os.path.join(config.work_dir, "teacher_signal"), log=log)
    inputs = _Inputs(signal, held)
    teacher = _teacher(config, held, inputs, log)
    md_mean = _md_mean(config, signal, inputs, log)
    context = {"teacher": teacher, "held_out": held.describe(), "md_mean_margin": md_mean,
               "signal": signal.directory}
    results = write_results(config, collect_runs(config, signal, md_mean, inputs), context)
    # an arm that fine-tunes another arm's student runs after it
    order = sorted(config.arms, key=lambda name: get_arm(name).init_from is not None)
    for seed in config.seeds:
        for name in order:
            run_one(config, get_arm(name), seed, signal, md_mean, held, inputs, log)
            results = write_results(config, collect_runs(config), context)
    return results
