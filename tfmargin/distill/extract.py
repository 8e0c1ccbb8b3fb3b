"""Extracting a teacher signal: the teacher's embedding of every training image, written as
TFRecord shards with the centers and a manifest (format.py), shard by shard so that a killed
extraction resumes and several workers share one (shards.py); the manifest comes last."""

import contextlib
import datetime
import hashlib
import json
import math
import os
import shutil
import socket
import time

import numpy as np

from tfmargin.atomic import atomic_path, replace_directory, write_json
from tfmargin.distill import shards as shard_io
from tfmargin.distill.checksums import dataset_fingerprint, sha256_file
from tfmargin.distill.format import (CENTERS, FORMAT, MANIFEST, MIB, TeacherSignalError, about,
                                     make_signal)
from tfmargin.distill.reader import check_labels, open_source
from tfmargin.distill.teacher import Teacher, resolve_centers

SHARD_BYTES = 200 * MIB  # default shard size: the range TensorFlow's guide recommends
CLASS_MEANS = "class_means"  # centers= value: each class's mean teacher embedding


def _check_output(output_dir, source_path):
    output_dir = os.path.abspath(os.fspath(output_dir))
    if os.path.exists(output_dir):
        if not os.path.isdir(output_dir):
            raise TeacherSignalError(f"{output_dir}: output exists and is not a directory")
        if os.listdir(output_dir) and not os.path.exists(os.path.join(output_dir, MANIFEST)):
            raise TeacherSignalError(f"{output_dir}: output directory holds other files (no "
                                     f"{MANIFEST}); give a new or empty directory")
    src_dir = os.path.dirname(source_path) if source_path.endswith(".rec") else source_path
    if os.path.abspath(src_dir) == output_dir:
        raise TeacherSignalError(f"{output_dir}: output must not be the dataset's own directory")
    return output_dir


def _default_shards(fingerprint, num_images, dim, flip):
    data = fingerprint.get("rec_size") or 0
    if not data:  # identity folders: the listing is already in memory, sizes are not
        data = num_images * 8000  # ~8 KB per 112x112 JPEG
    total = data + num_images * dim * 4 * (2 if flip else 1)
    return max(1, min(num_images, math.ceil(total / SHARD_BYTES)))


def _class_means(sums, where):
    empty = np.flatnonzero(~np.any(sums, axis=1))
    if empty.size:
        raise TeacherSignalError(f"{where}: class {int(empty[0])} has no images; class_means "
                                 "needs an image of every class", "source")
    return (sums / np.linalg.norm(sums, axis=1, keepdims=True)).T.astype(np.float32)


def extract_teacher_signal(teacher, source, output_dir, *, centers=None, flip=False,
                           batch_size=128, shards=None, teacher_path=None, log=print,
                           progress=True, shuffle=False, seed=0, num_workers=1, worker_index=0,
                           merge=True):
    """Compute and write a teacher signal; returns it as a TeacherSignal.

    teacher: a keras Model or a .keras path: the classifier (inputs image/label[/teacher], as
        tfmargin.train.build.classifier builds it) or its embedding backbone (float32
        (B, H, H, 3) in [-1, 1] -> (B, D)).
    source: a .rec (insightface RecordIO with its .idx; or a directory holding train.rec) or
        identity folders.
    centers: (D, C) array or .npy path; default: the teacher classifier's head. Stored with
        unit-norm columns. "class_means": the normalised mean of the teacher's (normalised)
        embeddings of each class of `source`, for a teacher that never saw these identities
        (any embedding model, or a classifier of other classes): what AdaDistill needs, since
        it builds its centers from the teacher's embeddings, not from its classifier.
    flip: also store the embeddings of the horizontally flipped images (`teacher_flip`).
    shards: number of TFRecord shards (default: about 200 MB each).
    teacher_path: the .keras file an in-memory teacher was loaded from (its sha256 goes into
        the manifest; a path given as `teacher` is used directly).
    shuffle: write the records in a seeded random order instead of the dataset's. insightface
        .rec files are sorted by identity, and a streaming shuffle buffer over sorted shards
        sees only a few hundred identities at a time: pass shuffle=True for real data. Each
        record keeps its dataset key either way.
    num_workers, worker_index: this process embeds the shards s with s % num_workers ==
        worker_index (workers on several machines share `output_dir` on one file system); the
        last worker to finish writes the manifest (or `merge_teacher_signal`, --merge).
    merge: write the manifest when every shard is there (False: embed this worker's shards
        only); returns None when it did not.
    Resumable: work goes into `output_dir.partial` shard by shard (shards.py); rerunning the
    same call keeps every finished shard whose sha256 still verifies and embeds the rest. The
    manifest is written last, over a complete, verified set, and only then does the signal
    take `output_dir`'s place.
    Everything is checked before any image is read (embedding size == centers' D, dataset
    classes == centers' C, every label < C, output directory usable); errors are
    TeacherSignalError with one line naming the file, field or record.
    """
    log = log or (lambda message: None)
    started = time.perf_counter()
    if batch_size < 1:
        raise TeacherSignalError(f"batch_size must be >= 1, got {batch_size}", "batch_size")
    with about("teacher"):
        t = Teacher.resolve(teacher, teacher_path)
    means = isinstance(centers, str) and centers == CLASS_MEANS
    with about("teacher" if centers is None else "centers"):
        if means:
            centers, centers_from = None, "class means of the teacher's embeddings"
        else:
            centers, centers_from = resolve_centers(centers, t)
    dim = t.embedding_size if means else centers.shape[0]
    if t.embedding_size != dim:
        raise TeacherSignalError(f"{t.where}: the teacher embeds into {t.embedding_size} "
                                 f"dimensions but the centers ({centers_from}) are {dim} x "
                                 f"{centers.shape[1]}; they must agree", "centers")
    with about("source"):
        src = open_source(source)
        n = len(src)
        if n == 0:
            raise TeacherSignalError(f"{src.path}: no images")
        if means:
            num_classes = src.num_classes or int(check_labels(src, np.iinfo(np.int64).max)
                                                 .max()) + 1
        else:
            num_classes = centers.shape[1]
            if src.num_classes is not None and src.num_classes != num_classes:
                raise TeacherSignalError(f"{src.path}: the dataset has {src.num_classes} "
                                         f"classes but the teacher's centers ({centers_from}) "
                                         f"have {num_classes}")
        check_labels(src, num_classes)
        fingerprint = dataset_fingerprint(source)
    with about("output_dir"):
        output_dir = _check_output(output_dir, src.path)
    if shards is None:
        shards = _default_shards(fingerprint, n, dim, flip)
    if not 1 <= shards <= n:
        raise TeacherSignalError(f"shards must be in 1..{n} (the number of images), got {shards}",
                                 "shards")
    if not (isinstance(num_workers, int) and num_workers >= 1):
        raise TeacherSignalError(f"num_workers must be >= 1, got {num_workers!r}", "num_workers")
    if not (isinstance(worker_index, int) and 0 <= worker_index < num_workers):
        raise TeacherSignalError(f"worker_index must be in 0..{num_workers - 1}, got "
                                 f"{worker_index!r}", "worker_index")
    plan = {
        "format": FORMAT,
        "teacher": t.describe(),
        "dataset": {**fingerprint, "num_images": n, "num_classes": num_classes},
        "embedding_size": dim, "num_classes": num_classes, "num_images": n,
        "flip": bool(flip), "shards": shards, "shuffle": {"seed": seed} if shuffle else None,
        "centers": {"from": centers_from, "means": means,
                    "sha256": None if means else hashlib.sha256(np.ascontiguousarray(
                        centers, np.float32).tobytes()).hexdigest()},
        "image_size": t.image_size,
    }
    from tfmargin.data.tfrecord import shard_name

    stage = output_dir + PARTIAL
    done = None if os.path.isdir(stage) else _complete(output_dir, plan)
    if done is not None:  # this very extraction finished before: a rerun changes nothing
        log(f"teacher signal: {output_dir} already holds this extraction, verified; kept")
        return done
    created = _join(stage, plan, None if means else centers)
    order = _order(plan)
    batch_size = min(batch_size, n)  # calls keep one shape: the last batch is padded to it
    names = [shard_name("train", i, shards) for i in range(shards)]
    mine = [i for i in range(shards) if i % num_workers == worker_index]
    todo = [i for i in mine if shard_io.verified(stage, names[i], len(order[i::shards])) is None]
    if len(todo) < len(mine):
        log(f"teacher signal: {len(mine) - len(todo)} of this worker's {len(mine)} shards "
            "already done and verified; kept")
    if todo:
        count = sum(len(order[i::shards]) for i in todo)
        log(f"teacher signal: embedding {count} images of {src.path}"
            f"{' (+ flipped)' if flip else ''} with {t.where} into {len(todo)} shard"
            f"{'s' * (len(todo) != 1)}" + (f" (worker {worker_index} of {num_workers})"
                                            if num_workers > 1 else ""))
        from tfmargin.data.progress import Progress

        try:
            with Progress(count, "teacher signal", enabled=progress) as bar:
                for i in todo:
                    shard_io.embed_shard(stage, names[i], src, order[i::shards], t, dim,
                                         batch_size, flip, progress=bar.update)
        except BaseException:
            # alone, and nothing finished: nothing to keep (never another worker's stage)
            if created and num_workers == 1 and not any(
                    n.endswith(".tfrecord.json") for n in os.listdir(stage)):
                shutil.rmtree(stage, ignore_errors=True)
            raise
    if not merge:
        return None
    return merge_teacher_signal(output_dir, log=log, started=started, wait=num_workers > 1)


PARTIAL = ".partial"  # the extraction's working directory beside output_dir
PLAN = "plan.json"
MERGING = "merging.lock"


def _key(plan):
    """What must agree for two processes to be writing the same signal: checksums, sizes and
    options, not where the files lie (another worker may mount them elsewhere)."""
    key = {k: v for k, v in plan.items() if k != "created"}
    for part in ("teacher", "dataset"):
        key[part] = {k: v for k, v in plan[part].items() if k != "path"}
    return key


def _join(stage, plan, centers):
    """Create the working directory for `plan` (whole, by one rename: a worker arriving at the
    same moment either sees it complete or makes its own and loses the rename), or join the
    one there, written by an interrupted run or by another worker of this extraction. Returns
    whether this process created it. A working directory of other settings is refused, never
    cleared: it may be other workers' hours of work."""
    if not os.path.isdir(stage):
        init = f"{stage}.init-{os.getpid()}"
        shutil.rmtree(init, ignore_errors=True)
        os.makedirs(init)
        if centers is not None:
            np.save(os.path.join(init, CENTERS), centers)
        write_json(os.path.join(init, PLAN), {**plan, "created": _now()})
        try:
            os.rename(init, stage)
            return True
        except OSError:  # another worker's rename came first
            shutil.rmtree(init, ignore_errors=True)
    try:
        with open(os.path.join(stage, PLAN)) as f:
            there = json.load(f)
    except (OSError, ValueError):
        raise TeacherSignalError(f"{stage}: an unfinished extraction without its {PLAN} (an "
                                 "older tfmargin's?); remove it to start over",
                                 "output_dir") from None
    if _key(there) != _key(plan):
        differ = sorted(k for k in _key(plan) if _key(plan)[k] != _key(there).get(k))
        raise TeacherSignalError(f"{stage}: holds an unfinished extraction with other "
                                 f"{', '.join(differ)}; finish it with its own command, or "
                                 "remove it to start over", "output_dir")
    return False


def _complete(output_dir, plan):
    """The signal at `output_dir` when it is this plan's, complete and intact, else None."""
    from tfmargin.distill.load import load_teacher_signal

    try:
        with open(os.path.join(output_dir, MANIFEST)) as f:
            if json.load(f).get("plan") != _key(plan):
                return None
        return load_teacher_signal(output_dir)  # re-hashes every shard and the centers
    except (OSError, ValueError, TeacherSignalError):
        return None


def _order(plan):
    n = plan["num_images"]
    if plan["shuffle"]:
        return np.random.default_rng(plan["shuffle"]["seed"]).permutation(n).astype(np.int64)
    return np.arange(n, dtype=np.int64)


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_teacher_signal(output_dir, *, log=print, started=None, wait=False):
    """Write the manifest of an extraction whose shards all exist and verify, and move it into
    place as `output_dir` (an earlier signal there is replaced only now); returns the
    TeacherSignal, or None (`wait`: another worker's shards are still missing, or another
    process is merging). Without `wait`, missing shards are a TeacherSignalError naming them."""
    from tfmargin.data.tfrecord import shard_name

    log = log or (lambda message: None)
    output_dir = os.path.abspath(os.fspath(output_dir))
    stage = output_dir + PARTIAL
    try:
        with open(os.path.join(stage, PLAN)) as f:
            plan = json.load(f)
    except (OSError, ValueError):
        raise TeacherSignalError(f"{stage}: no extraction to merge ({PLAN} missing); run the "
                                 "extraction first", "output_dir") from None
    shards, n = plan["shards"], plan["num_images"]
    names = [shard_name("train", i, shards) for i in range(shards)]
    counts = [len(range(i, n, shards)) for i in range(shards)]
    markers = [shard_io.verified(stage, name, c) for name, c in zip(names, counts)]
    missing = [name for name, m in zip(names, markers) if m is None]
    if missing:
        if wait:
            log(f"teacher signal: {len(missing)} of {shards} shards still to come from other "
                "workers; the last one to finish (or --merge) writes the manifest")
            return None
        raise TeacherSignalError(f"{stage}: {len(missing)} of {shards} shards missing or not "
                                 f"verified (first: {missing[0]}); run the workers first",
                                 "output_dir")
    lock = os.path.join(stage, MERGING)
    try:
        _take_lock(lock)
    except FileExistsError:
        if wait:
            log("teacher signal: another worker is writing the manifest")
            return None
        holder = _live_holder(lock)
        if holder:
            raise TeacherSignalError(f"{lock}: {holder} is writing the manifest now; wait for "
                                     "it (remove the lock only if that process is gone)",
                                     "output_dir") from None
        shutil.rmtree(lock)  # an explicit merge takes over from one that was killed
        _take_lock(lock)
    try:
        return _merge(stage, output_dir, plan, names, counts, markers, started, log)
    finally:
        shutil.rmtree(lock, ignore_errors=True)  # gone with the stage on success


def _take_lock(lock):
    os.mkdir(lock)  # atomic: one merger
    write_json(os.path.join(lock, "owner.json"), {"host": socket.gethostname(),
                                                  "pid": os.getpid()})


def _live_holder(lock):
    """Who holds the merge lock, if it may still be alive: a process of this host that still
    runs, or one on another host (which this one cannot see). None when the holder is gone."""
    try:
        with open(os.path.join(lock, "owner.json")) as f:
            owner = json.load(f)
    except (OSError, ValueError):
        return None  # killed before it wrote its name: it had not begun
    if owner.get("host") != socket.gethostname():
        return f"process {owner.get('pid')} on {owner.get('host')}"
    try:
        os.kill(int(owner["pid"]), 0)
    except ProcessLookupError:
        return None
    except (PermissionError, KeyError, TypeError, ValueError):
        pass
    return f"process {owner.get('pid')}"


def _merge(stage, output_dir, plan, names, counts, markers, started, log):
    import tfmargin
    from tfmargin.data.tfrecord import METADATA

    n, shards = plan["num_images"], plan["shards"]
    for stray in os.listdir(stage):  # a killed worker's unfinished shard
        if ".tfrecord.tmp-" in stray:
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(stage, stray))
    dim, num_classes = plan["embedding_size"], plan["num_classes"]
    if plan["centers"]["means"]:
        centers = _class_means(shard_io.class_sums(stage, names, num_classes, dim),
                               plan["dataset"]["path"])
        with atomic_path(os.path.join(stage, CENTERS), suffix=".npy") as tmp:
            np.save(tmp, centers)
    centers = np.load(os.path.join(stage, CENTERS))
    write_json(os.path.join(stage, METADATA), {
        "format": "tfmargin-tfrecord-v1", "num_examples": n, "num_classes": num_classes,
        "image_size": plan["image_size"], "teacher_dim": dim, "teacher_flip": plan["flip"],
        "shards": names, "counts": counts, "source": plan["dataset"]["path"]})
    norm_min = min(m["norm_min"] for m in markers)
    norm_max = max(m["norm_max"] for m in markers)
    seed = (plan["shuffle"] or {}).get("seed")
    manifest = {
        "format": FORMAT,
        "tfmargin_version": tfmargin.__version__,
        "created": _now(),
        "teacher": plan["teacher"],
        "dataset": plan["dataset"],
        "embedding_size": dim,
        "num_classes": num_classes,
        "num_images": n,
        "flip": plan["flip"],
        "embeddings": {
            "dtype": "float32", "as": "the teacher's raw output, not re-normalised",
            # The MarginDistillation head normalises either way.
            "normalised": bool(abs(norm_min - 1) < 1e-3 and abs(norm_max - 1) < 1e-3),
            "norm_min": float(norm_min), "norm_max": float(norm_max),
            "flip": "teacher_flip holds the embedding of the mirrored image" if plan["flip"]
            else None,
        },
        "centers": {"file": CENTERS, "sha256": sha256_file(os.path.join(stage, CENTERS)),
                    "shape": [dim, num_classes], "from": plan["centers"]["from"],
                    "normalised": True},
        "order": (f"a permutation of the dataset (seed {seed}): its record i is record "
                  f"i // {shards} of shard i % {shards}; keys name the dataset's records"
                  if plan["shuffle"] else f"image i of the dataset is record i // {shards} of "
                  f"shard i % {shards}"),
        "shuffle": plan["shuffle"],
        "shards": [{"file": m["file"], "records": m["records"], "sha256": m["sha256"]}
                   for m in markers],
        "metadata": {"file": METADATA, "sha256": sha256_file(os.path.join(stage, METADATA))},
        "seconds": round(time.perf_counter() - started, 3) if started else None,
        "plan": _key(plan),  # what a rerun of the same extraction finds done
    }
    write_json(os.path.join(stage, MANIFEST), manifest)  # last: marks it complete
    replace_directory(stage, output_dir)
    # the markers, the plan and the lock were the extraction's own bookkeeping; a kill before
    # this line leaves them beside a complete signal, which nothing reads
    for path in [shard_io.marker_path(output_dir, name) for name in names] + [
            os.path.join(output_dir, PLAN)]:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
    shutil.rmtree(os.path.join(output_dir, MERGING), ignore_errors=True)
    log(f"teacher signal: {n} images, {num_classes} classes, {dim}-d"
        f"{' (+ flipped)' if plan['flip'] else ''}, {shards} shard{'s' * (shards != 1)}"
        + (f", {manifest['seconds']:.1f} s" if manifest["seconds"] is not None else "")
        + f" -> {output_dir}")
    return make_signal(output_dir, manifest, centers)
