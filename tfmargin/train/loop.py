"""train(config): one training run end to end, teacher or student.

    from tfmargin.train import TrainConfig, train
    result = train(TrainConfig(method="margin_distillation", data="faces_emore/train.rec",
                               teacher_signal="faces_emore/r100", val_bin="faces_emore/val.bin",
                               output_dir="runs/md"))
    result.backbone            # the trained embedding model; result.paths["backbone"] on disk
    result.best                # {"step", "accuracy", "set", "backbone"} on the validation set

Output directory:
  config.json           the recipe
  backbone.keras        the final embedding model (images -> embeddings)
  classifier.keras      the final classifier (its head holds the class centers)
  best_backbone.keras   the backbone with the best validation accuracy, best.json says when
  history.csv           per-epoch logs (appended across resumptions)
  backup/               BackupAndRestore's state while a run is unfinished: rerunning the same
                        command resumes from the last finished epoch (steps_per_epoch steps)
"""

import contextlib
import dataclasses
import functools
import json
import os

import keras

from tfmargin.atomic import atomic_path, recover_directory, write_json
from tfmargin.train import strategy as strategies
from tfmargin.train import workers
from tfmargin.train.build import build_student, build_teacher
from tfmargin.train.callbacks import (SelectionRecord, StopOnNaN, TrainingDiverged,
                                      divergence_advice, restore_best)
from tfmargin.train.config import ConfigError, validate
from tfmargin.train.determinism import determinism
from tfmargin.train.inputs import check_classes, is_npz, training_data


@dataclasses.dataclass
class TrainResult:
    model: keras.Model       # the classifier as trained (final weights)
    backbone: keras.Model    # its embedding backbone (final weights)
    head: keras.layers.Layer
    history: dict            # this invocation's Keras history {metric: [per epoch]}
    best: dict | None        # best validation {"step", "accuracy", "set", "backbone"}
    paths: dict              # {"config", "backbone", "classifier", "best_backbone"?, "best"?,
                             #  "history"}; {} in a process that does not write (multi-worker)
    start_step: int = 0      # > 0 when this invocation resumed an interrupted run
    stats: object = None     # the tf.data stream's PipelineStats: corrupt images skipped, named
    strategy: object = None  # the tf.distribute strategy / keras.distribution it ran under


def load_signal(config):
    """The TeacherSignal a student config names (checked against its training data), or None."""
    if config.role != "student" or not config.teacher_signal:
        return None
    from tfmargin.distill import TeacherSignalError, load_teacher_signal

    try:
        return load_teacher_signal(config.teacher_signal,
                                   dataset=None if is_npz(config.data) else config.data)
    except TeacherSignalError as e:
        raise ConfigError(f"teacher_signal: {e}") from None


def _resume_epoch(backup_dir, writer=True):
    if writer:  # undo a kill between the two renames of a backup (NFS); one process does it
        recover_directory(backup_dir)
    path = os.path.join(backup_dir, "training_metadata.json")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return int(json.load(f)["epoch"])


def _save_model(model, path):
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)
    return path


def train(config, *, signal=None, data=None, callbacks=(), log=print):
    """Train what `config` describes; returns a TrainResult. Everything is checked before any
    training (ConfigError naming the field). `signal`: an already loaded TeacherSignal;
    `data`: a ready stream of ({"image", "label", "teacher"?}, label) batches (e.g. an
    ArrayFeed) instead of the one built from config.data. Raises TrainingDiverged on a NaN
    loss. Seeded by config.seed; `config.deterministic` adds TensorFlow's op determinism."""
    with determinism(config.deterministic, config.seed):
        return _train(config, signal, data, callbacks, log)


def _train(config, signal, data, callbacks, log):
    if signal is not None and not config.teacher_signal:
        config = config.replace(teacher_signal=signal.directory)
    validate(config, check_files=True)
    multi_worker = config.strategy == "multi_worker"
    if multi_worker and data is not None:
        raise ConfigError("data: under multi_worker each worker reads its own share of a .rec "
                          "or TFRecord source; a ready stream cannot be split over workers")
    if signal is None:
        signal = load_signal(config)
    num_classes = check_classes(config, signal) if data is None else (
        config.num_classes or (signal.num_classes if signal is not None else None)
        or getattr(data, "num_classes", None))
    strategy = strategies.make_strategy(config.strategy)
    strategies.check_fits(strategy, num_classes, config.batch_size)
    if data is None and is_npz(config.data) and strategies.hosts() > 1:
        raise ConfigError("data: an .npz feed serves one host; with several, give a .rec or "
                          "TFRecord source (each host then reads its own share)")
    with strategies.scope(strategy):
        if config.role == "teacher":
            built = build_teacher(config, num_classes)
        else:
            built = build_student(config, signal, num_classes)

    out = os.path.abspath(config.output_dir)
    os.makedirs(out, exist_ok=True)
    paths = {"config": os.path.join(out, "config.json"),
             "backbone": os.path.join(out, "backbone.keras"),
             "classifier": os.path.join(out, "classifier.keras"),
             "history": os.path.join(out, "history.csv")}
    writer = strategies.is_writer(strategy)  # one process writes the run's files
    if writer:
        write_json(paths["config"], config.to_dict())
    backup_dir = os.path.join(out, "backup")
    start_epoch = _resume_epoch(backup_dir, writer)
    # JAX hosts: one that cannot see the backup would train other weights
    strategies.same_on_every_host(start_epoch, f"output_dir {out}: the epoch to resume at")
    # JAX hosts other than the writer still take every save, into a scratch directory of their
    # own: measured with two host processes, process 0 saving alone during fit failed in JAX's
    # cross-process check of a device_put. Removed at the end (or at exit, on an error).
    scratch_dir = scratch = None
    if not writer and strategies.spans_hosts(strategy):
        import tempfile

        scratch_dir = tempfile.TemporaryDirectory(prefix="tfmargin-host-")
        scratch = scratch_dir.name
    start_step = start_epoch * config.steps_per_epoch
    if start_step:
        log(f"resuming {out} at step {start_step} (epoch {start_epoch})")

    stats = None
    if data is None:
        from tfmargin.data.pipeline.stats import PipelineStats

        stats = PipelineStats()  # held here: dataset attributes do not survive .skip()
        data = training_stream(config, signal, strategy, start_step, num_classes, stats)

    guard = StopOnNaN(divergence_advice(config), start_step, log=log)
    selection = _verification(config, built, out, paths, local=multi_worker, writer=writer,
                              scratch=scratch)
    # the verification callback writes val_* into the epoch's logs: it runs before the logger
    # the backup outlives fit: it goes only once the final models are saved
    cbs = [workers.ChiefBackup(backup_dir, writer=writer, save_freq="epoch",
                               delete_checkpoint=False,
                               scratch=scratch and os.path.join(scratch, "backup")),
           guard, *selection]
    if writer:
        cbs.append(keras.callbacks.CSVLogger(paths["history"], append=True))
    if stats is not None:
        from tfmargin.data.pipeline.stats import skipped_images_report

        cbs.append(skipped_images_report(stats, log))
    cbs += list(callbacks)
    if strategies.spans_hosts(strategy):
        from tfmargin.train.hosts import HostsAgree

        cbs = [HostsAgree(cbs)]  # a callback failing or stopping on one host stops them all
    epochs = config.steps // config.steps_per_epoch
    with _named_data_errors(config, signal), strategies.fit_scope(strategy):
        if multi_worker:  # Keras' fit cannot (tfmargin/train/workers.py)
            fit = workers.fit(built.model, data, strategy=strategy, epochs=epochs,
                              steps_per_epoch=config.steps_per_epoch, initial_epoch=start_epoch,
                              callbacks=cbs, verbose=config.verbose)
        else:
            fit = built.model.fit(data, epochs=epochs, steps_per_epoch=config.steps_per_epoch,
                                  shuffle=False, callbacks=cbs, verbose=config.verbose)
    if guard.message:
        raise TrainingDiverged(guard.message)
    if stats is not None and stats.skipped:  # this process's stream's
        log(f"skipped {stats.skipped} corrupt image(s) in all: "
            + "; ".join(stats.skipped_records[:20])
            + ("; ..." if len(stats.skipped_records) > 20 else ""))
    keep = out if writer else scratch  # a non-writer JAX host saves too, into its scratch
    if keep:
        _save_model(built.backbone, os.path.join(keep, "backbone.keras"))
        _save_model(built.model, os.path.join(keep, "classifier.keras"))
    if not writer:  # the writer's files: this process has none of its own
        if scratch_dir is not None:
            scratch_dir.cleanup()
        return TrainResult(built.model, built.backbone, built.head, fit.history, None, {},
                           start_step, stats, strategy)
    workers.ChiefBackup.remove(backup_dir)
    best = selection[1].best() if len(selection) > 1 else None
    if best is None:
        paths.pop("best_backbone", None)
        paths.pop("best", None)
    return TrainResult(built.model, built.backbone, built.head, fit.history, best, paths,
                       start_step, stats, strategy)


def _named_data_errors(config, signal):
    """TensorFlow's errors from inside the input pipeline ("corrupted record at 184831", "Key:
    label. Data types don't match") name no file: at this edge they become one line naming the
    source's file and record (tfmargin.data.pipeline.named_errors)."""
    source = signal.directory if signal is not None and not config.triplet else config.data
    if is_npz(source):  # the .npz feed is numpy: its errors are ours already
        return contextlib.nullcontext()
    from tfmargin.data.pipeline.errors import named_errors

    return named_errors(source)


def training_stream(config, signal, strategy, start_step=0, num_classes=None, stats=None):
    """The stream train() feeds: training_data for one device or keras.distribution on one
    host (which take the global batch); over several JAX hosts each host's own shard of the
    source in its share of the global batch; else a tf.distribute distributed dataset, one
    input pipeline per worker, each reading its own shard of the source."""
    share = strategies.host_share(strategy)
    if share is not None:
        index, hosts = share
        if config.batch_size % hosts:
            raise ConfigError(f"batch_size: {config.batch_size} does not split over {hosts} hosts")
        import tensorflow as tf

        ctx = tf.distribute.InputContext(num_input_pipelines=hosts, input_pipeline_id=index,
                                         num_replicas_in_sync=hosts)
        return strategies.mark_host_share(training_data(
            config, signal, input_context=ctx, start_step=start_step, num_classes=num_classes,
            stats=stats))
    n = strategies.replicas(strategy)
    if n == 1:  # one device, or keras.distribution (it takes the global batch)
        return training_data(config, signal, start_step=start_step, num_classes=num_classes,
                             stats=stats)
    if is_npz(config.data):
        raise ConfigError(f"data: an .npz feed cannot be distributed with --strategy="
                          f"{config.strategy}; give a .rec or TFRecord source")
    if config.batch_size % n:
        raise ConfigError(f"batch_size: {config.batch_size} does not split over {n} replicas")

    def per_pipeline(ctx):
        return training_data(config, signal, input_context=ctx, start_step=start_step,
                             num_classes=num_classes,
                             skip_per_step=n // ctx.num_input_pipelines, stats=stats)

    return strategy.distribute_datasets_from_function(per_pipeline)


def _verification(config, built, out, paths, local=False, writer=True, scratch=None):
    """[VerificationCallback, SelectionRecord] when validation / test sets are given.
    `local` (multi_worker): only the writer evaluates, on a copy of the backbone outside the
    strategy kept in step before each evaluation (Keras' predict there is a collective all
    workers would have to join); every worker still loads the sets, so that a bad one stops
    them all before the first step. Other non-writers (JAX hosts, one program) evaluate but
    save into `scratch` (saving is a collective there)."""
    if not config.val_bin and not config.test_bins:
        return []
    from tfmargin.evaluate import VerificationCallback
    from tfmargin.evaluate.sets import set_name

    bins = {}
    for path in ([config.val_bin] if config.val_bin else []) + list(config.test_bins):
        name = set_name(path)
        if name in bins:
            raise ConfigError(f"test_bins: two sets are named {name!r} ({bins[name]}, {path})")
        bins[name] = path
    select_on = set_name(config.val_bin) if config.val_bin else None
    keep = out if writer else scratch  # where the best backbone is saved (None: nowhere)
    best_path = os.path.join(keep, "best_backbone.keras") if select_on and keep else None
    if select_on and writer:
        paths["best_backbone"] = best_path
        paths["best"] = os.path.join(out, "best.json")
    embedding_model, sync = built.backbone, None
    if local and writer:
        embedding_model = workers.local_copy(built.backbone)
        sync = functools.partial(workers.copy_weights, built.backbone, embedding_model)
    verification = VerificationCallback(
        bins, every_n_steps=config.eval_every, select_on=select_on,
        embedding_model=embedding_model, batch_size=config.eval_batch_size,
        best_path=best_path, restore_best=False, verbose=config.verbose and writer, sync=sync)
    if not writer:
        if local:
            return []
        if select_on:  # the best so far, as the writer's record has it (decisions must match)
            restore_best(verification, os.path.join(out, "best.json"),
                         os.path.join(out, "best_backbone.keras"))
        return [verification]
    if not select_on:
        return [verification]
    return [verification, SelectionRecord(verification, paths["best"], paths["best_backbone"])]
