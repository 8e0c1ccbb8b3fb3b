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
held-out set or starting student is refused before any result file is rewritten: results are
never mixed.
"""

import hashlib
import os
import shutil
import time

from tfmargin.atomic import read_json, write_json
from tfmargin.compare.arms import get_arm
from tfmargin.compare.config import CompareError
from tfmargin.compare.held_out import evaluate_held_out, load_held_out
from tfmargin.compare.report import write_results
from tfmargin.compare.teachers import Teachers
from tfmargin.machine import machine_info

IGNORED = ("verbose",)  # recipe fields that do not change a run's numbers
# Records and students also ignore where the teacher signal lay: the path is absolute (a moved
# checkout would otherwise orphan every run) and its content is in the inputs' checksums.
RECORD_IGNORED = IGNORED + ("teacher_signal",)


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
    """The checksums that tie a run to what it was trained and measured on. The teacher is its
    weights' checksum (teachers.py says why); `teachers` (set once the current teacher is
    recorded) also knows the earlier teachers of the comparison and the files of each."""

    def __init__(self, signal, held):
        from tfmargin.distill import sha256_file

        m = signal.manifest
        self.common = {
            "teacher_signal": _digest(m["centers"]["sha256"],
                                      *(s["sha256"] for s in m["shards"])),
            "teacher": m["teacher"].get("weights_sha256") or m["teacher"].get("sha256"),
            "held_out": _digest(*(sha256_file(p) for p in held.sources.values())),
        }
        self.teachers = None

    def of(self, recipe, teacher=None):
        """The inputs of a run of `recipe` with the current teacher, or with the earlier
        teacher whose weights' checksum is `teacher`."""
        from tfmargin.distill import sha256_file

        common = self.common
        if teacher is not None and teacher != common["teacher"]:
            common = {**common, "teacher": teacher,
                      "teacher_signal": self.teachers.entries[teacher]["signal"]}
        init = recipe.init_backbone
        return {**common,
                "init_backbone": sha256_file(init) if init and os.path.isfile(init) else None}

    def teacher_of(self, record):
        """The weights' checksum of the teacher a record names (by its weights or a file);
        None for a teacher this comparison has not seen."""
        named = (record.get("inputs") or {}).get("teacher")
        if self.teachers is None:
            return named if named == self.common["teacher"] else None
        return self.teachers.key(named)

    def recorded(self, record):
        """A record's inputs as this run names them (a teacher by its weights)."""
        got = dict(record.get("inputs") or {})
        key = self.teacher_of(record)
        if key is not None:
            got["teacher"] = key
        return got


def _check(record, recipe, inputs, path, known=None):
    """The record, when it was made under `recipe` on `inputs`; else CompareError. A starting
    student that is no longer on disk (a new machine: students are not committed), or that was
    trained again since (RETRAINED beside it: another file), is not compared: the record of
    the run that trained it is checked on its own."""
    got = known.recorded(record) if known is not None else dict(record.get("inputs") or {})
    init = recipe.init_backbone
    if init and "init_backbone" in got and (inputs.get("init_backbone") is None or
                                            os.path.isfile(os.path.join(os.path.dirname(init),
                                                                        RETRAINED))):
        inputs = {**inputs, "init_backbone": got["init_backbone"]}
    if _comparable(record.get("recipe", {}), RECORD_IGNORED) != _comparable(recipe.to_dict(),
                                                                            RECORD_IGNORED):
        what = "another recipe"
    elif got != inputs:
        changed = [k for k in inputs if got.get(k) != inputs[k]]
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
    cached = read_json(path)
    if cached and all(cached.get(k) == info[k] for k in ("weights_sha256", "held_out")) \
            and "metrics" in cached:
        files = {cached["sha256"], *cached.get("files_sha256", ()), info["sha256"]} - {None}
        info = {**info, "files_sha256": sorted(files), "metrics": cached["metrics"]}
        if info != cached:
            log(f"[compare] teacher: {config.teacher} holds the weights evaluated before")
            write_json(path, info)
    else:
        log(f"[compare] teacher: evaluating {config.teacher}")
        from tfmargin.models import load_backbone

        info["metrics"] = evaluate_held_out(load_backbone(config.teacher), held)
        info["files_sha256"] = [info["sha256"]] if info["sha256"] else []
        write_json(path, info)
    return info


def _md_mean(config, signal, inputs, log):
    from tfmargin.distill import mean_teacher_margin

    path = os.path.join(config.output_dir, "md_mean_margin.json")
    key = {"signal": inputs.common["teacher_signal"], "m_max": config.m_max,
           "m_min": config.m_min, "batch_size": config.batch_size}
    cached = read_json(path)
    if cached and cached.get("key") == key:
        return cached["margin"]
    margin = mean_teacher_margin(signal, config.m_max, config.m_min,
                                 batch_size=config.batch_size)
    log(f"[compare] MarginDistillation's mean margin on this data: {margin:.4f} rad")
    write_json(path, {"key": key, "margin": margin})
    return margin


TIES = "inputs.json"  # beside a student: the checksums it trains on (moved checkouts resume)
RETRAINED = "retrained.json"  # beside a starting student trained again on a new machine


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
    done = read_json(os.path.join(out, "finished.json"))
    backbone = os.path.join(out, "backbone.keras")
    if done and _same_student(done.get("recipe", {}), recipe, done.get("inputs"), ties) \
            and os.path.isfile(backbone):
        from tfmargin.distill import sha256_file

        if sha256_file(backbone) == done.get("backbone_sha256"):
            return backbone, done.get("train_seconds", 0.0)
    started = read_json(os.path.join(out, "config.json"))
    if os.path.isdir(out) and (started is None or not _same_student(
            started, recipe, read_json(os.path.join(out, TIES)), ties)):
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
            self.before = (read_json(path) or {}).get("seconds", 0.0)
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            write_json(path, {"seconds": self.before + time.perf_counter() - self.started})

    return Elapsed()


def _train_student(name, recipe, ties, signal, log):
    """(backbone path, training seconds, step resumed at) of the student `recipe` trains: the
    one on disk when it finished before, else trained (resuming an interrupted one)."""
    from tfmargin.distill import sha256_file
    from tfmargin.train import train

    finished = _prepare_student(recipe, ties, log)
    if finished is not None:
        return (*finished, None)
    import keras

    log(f"[compare] {name} seed {recipe.seed}: {recipe.steps} steps of {recipe.batch_size}")
    keras.backend.clear_session()  # dozens of runs in one process: free the last one's graph
    elapsed = os.path.join(recipe.output_dir, "elapsed.json")
    result = train(recipe, signal=signal, log=log, callbacks=[_elapsed_callback(elapsed)])
    backbone = result.paths["backbone"]
    train_seconds = (read_json(elapsed) or {}).get("seconds", 0.0)
    write_json(os.path.join(recipe.output_dir, "finished.json"),
               {"recipe": recipe.to_dict(), "inputs": ties,
                "backbone_sha256": sha256_file(backbone), "train_seconds": train_seconds})
    return backbone, train_seconds, result.start_step or None


def _starting_student(config, arm, recipe, signal, md_mean, held, inputs, log):
    """Make sure the student a fine-tuning arm starts from is on disk. Students are not
    committed, so on a new machine a finished run's student is gone: it is trained again
    (the same recipe; with --deterministic the same weights) and its numbers are checked
    against its record. Returns what became of it, for the fine-tuned run's record."""
    if os.path.isfile(recipe.init_backbone):
        return None
    seed = recipe.seed
    source = config.recipe(get_arm(arm.init_from), seed, signal.directory, md_mean,
                           signal.embedding_size)
    record = read_json(run_path(config, arm.init_from, seed))
    log(f"[compare] {arm.name} seed {seed}: its starting {arm.init_from} student is not on "
        "disk; training it again")
    backbone, seconds, _ = _train_student(arm.init_from, source, inputs.of(source), signal, log)
    if record is None:
        write_json(os.path.join(source.output_dir, RETRAINED), {"for": arm.name, "seed": seed})
        return None
    metrics = evaluate_held_out(backbone, held)
    same = metrics == record["metrics"]
    write_json(os.path.join(source.output_dir, RETRAINED), {"for": arm.name, "seed": seed,
                                                           "matches_record": same})
    log(f"[compare] {arm.init_from} seed {seed} trained again: its numbers "
        + ("match its record" if same else
           f"differ from its record (accuracy {metrics['accuracy']:.6f} vs "
           f"{record['metrics']['accuracy']:.6f})"))
    return {"matches_record": same, "metrics": metrics, "train_seconds": round(seconds, 1)}


def run_one(config, arm, seed, signal, md_mean, held, inputs, log=print):
    """Train and evaluate one student; returns (and writes) its run record."""
    path = run_path(config, arm.name, seed)
    done = read_json(path)
    if done is not None:
        return _check_record(config, arm, seed, done, path, signal, md_mean, inputs)
    recipe = config.recipe(arm, seed, signal.directory, md_mean, signal.embedding_size)
    start = None
    if arm.init_from:
        start = _starting_student(config, arm, recipe, signal, md_mean, held, inputs, log)
    ties = inputs.of(recipe)
    backbone, train_seconds, resumed = _train_student(arm.name, recipe, ties, signal, log)
    started = time.perf_counter()
    metrics = evaluate_held_out(backbone, held)
    history = os.path.join(recipe.output_dir, "history.csv")
    record = {"arm": arm.name, "method": arm.method, "seed": seed, "recipe": recipe.to_dict(),
              "inputs": ties, "metrics": metrics, "train_seconds": round(train_seconds, 1),
              "eval_seconds": round(time.perf_counter() - started, 1),
              "resumed_at_step": resumed, "history": os.path.abspath(history),
              "machine": machine_info()}  # a comparison may span machines
    if start is not None:
        record["starting_student"] = start
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
            record = read_json(path)
            if record is None:
                continue
            if inputs is not None:
                _check_record(config, get_arm(name), seed, record, path, signal, md_mean,
                              inputs)
            runs.setdefault(name, {})[seed] = record
    return runs


def _check_record(config, arm, seed, record, path, signal, md_mean, inputs):
    """_check against the recipe and inputs of the teacher the record names: the current one,
    or an earlier teacher of this comparison (its signal, its mean margin)."""
    key = inputs.teacher_of(record)
    if key is not None and key != inputs.common["teacher"]:
        md_mean = inputs.teachers.entries[key]["md_mean_margin"]
    recipe = config.recipe(arm, seed, signal.directory, md_mean, signal.embedding_size)
    return _check(record, recipe, inputs.of(recipe, key), path, inputs)


def _one_teacher_per_seed(config, runs, inputs):
    """Refuse (CompareError) a seed whose runs name two teachers, or that an earlier teacher
    left unfinished: finishing it with this teacher would mix two teachers within one seed's
    paired differences."""
    current = inputs.common["teacher"]
    for seed in config.seeds:
        done = [r for arm in runs.values() for s, r in arm.items() if s == seed]
        named = {inputs.teacher_of(r) for r in done}
        where = os.path.join(config.output_dir, "runs", "*", f"seed{seed}.json")
        if len(named) > 1:
            raise CompareError(f"seeds: the runs of seed {seed} ({where}) name {len(named)} "
                               "teachers; one seed, one teacher")
        earlier = named - {current}
        if earlier and len(done) < len(config.arms):
            entry = inputs.teachers.entries[earlier.pop()]
            raise CompareError(
                f"seeds: seed {seed} was started with another teacher ({entry.get('path')}, "
                f"weights sha256 {entry['weights_sha256'][:12]}) and is not finished; one seed, "
                f"one teacher: move {where} aside to run seed {seed} again with this teacher")


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
    teachers = Teachers.load(config.output_dir)  # before teacher.json changes hands
    teacher = _teacher(config, held, inputs, log)
    md_mean = _md_mean(config, signal, inputs, log)
    teachers.record(teacher, inputs.common["teacher_signal"], md_mean)
    inputs.teachers = teachers
    context = {"teacher": teacher, "teachers": teachers.entries, "held_out": held.describe(),
               "md_mean_margin": md_mean, "signal": signal.directory}
    runs = collect_runs(config, signal, md_mean, inputs)
    _one_teacher_per_seed(config, runs, inputs)
    results = write_results(config, runs, context)
    # an arm that fine-tunes another arm's student runs after it
    order = sorted(config.arms, key=lambda name: get_arm(name).init_from is not None)
    for seed in config.seeds:
        for name in order:
            run_one(config, get_arm(name), seed, signal, md_mean, held, inputs, log)
            results = write_results(config, collect_runs(config), context)
    return results


def report_results(config, log=print):
    """Rewrite results.json / .md / .png from the run files already in config.output_dir,
    with the teacher, held-out sets and signal that results.json recorded: no teacher, data or
    training needed (a report after a change to the report, on any machine). The run files
    are not checked against their inputs here; run_comparison checks them."""
    before = read_json(os.path.join(config.output_dir, "results.json"))
    if before is None:
        raise CompareError(f"output_dir: {config.output_dir} holds no results.json to report "
                           "from")
    context = {k: before.get(k) for k in ("teacher", "held_out", "md_mean_margin", "signal",
                                          "machine")}
    if None in context.values():
        raise CompareError(f"output_dir: {config.output_dir}/results.json lacks the teacher, "
                           "held-out sets or machine it was made with")
    teachers = Teachers.load(config.output_dir, save=False).entries
    if teachers:
        context["teachers"] = teachers
    results = write_results(config, collect_runs(config), context)
    log(f"[compare] {config.output_dir}: results rewritten from "
        f"{results['status']['finished_runs']} run files")
    return results

