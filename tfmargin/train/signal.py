"""The teacher signal: what a MarginDistillation student needs from its teacher, computed once.

    signal = extract_teacher_signal("teacher.keras", "faces_emore/train.rec", "faces_emore/r100")
    signal = load_teacher_signal("faces_emore/r100", dataset="faces_emore/train.rec",
                                 teacher="teacher.keras")
    ds = train_dataset(signal.directory, 512)     # features["teacher"] rides with each image

On disk (`output_dir/`):
  centers.npy              float32 (D, C): the teacher head's class centers, unit-norm columns
  train-0000i-of-0000S.tfrecord   one record per training image (tfmargin.data.tfrecord): the
                           encoded image as stored in the dataset, its label and key, `teacher`
                           (the teacher's float32 embedding of the unflipped image, as the
                           paper) and, with flip=True, `teacher_flip` (of the mirrored image),
                           which lets a student train with flip augmentation. Image i of the
                           dataset (or of its permutation, shuffle=True) is record i // S of
                           shard i % S (the writer's round robin).
  dataset.json             the shard writer's metadata, read by tfmargin.data.train_dataset
  manifest.json            written last: the teacher (file sha256, weights sha256, backbone,
                           embedding size), the dataset (path, fingerprint, images, classes),
                           centers.npy's and every shard's sha256 and record count, whether the
                           embeddings are unit-norm, flip, creation time, tfmargin version.

Extraction is all or nothing: everything is written into `output_dir.partial` and renamed into
place at the end, so an interrupted run leaves neither a manifest nor a partial signal under the
final name, and a signal already there survives a failed re-extraction intact.

Dataset fingerprint (cheap for a 30 GB .rec): sha256 over the .idx file, the `property` file,
the .rec's size and the sha256 of its first and last MiB. It tells apart different datasets,
re-packed or truncated files and a different .idx; it does not notice an in-place edit of a
record in the middle of the .rec (the shards carry their own sha256 for that). Identity folders:
sha256 over every image's relative path and size, in the folder order.

Records are in the dataset's order unless shuffle=True, which writes a seeded permutation; for
identity-sorted data (every insightface .rec) that is what a streaming shuffle buffer needs.
"""

import contextlib
import dataclasses
import datetime
import hashlib
import json
import math
import os
import shutil
import time

import numpy as np

from tfmargin.atomic import AllOrNothing, write_json
from tfmargin.errors import ModelFileError, TfmarginError

MANIFEST = "manifest.json"
CENTERS = "centers.npy"
FORMAT = "tfmargin-teacher-signal-v1"
_MIB = 1 << 20
_SHARD_BYTES = 200 * _MIB  # default shard size: the range TensorFlow's guide recommends


class TeacherSignalError(TfmarginError, ValueError):
    """A teacher signal that cannot be made or trusted; the one-line message names the file,
    field or record. `field` names the extract_teacher_signal argument at fault (teacher,
    source, output_dir, centers, batch_size, shards), so that a CLI can name its flag."""

    def __init__(self, message, field=None):
        super().__init__(message)
        self.field = field


@contextlib.contextmanager
def _about(field):
    """Errors raised inside concern `field` unless they already name one."""
    try:
        yield
    except TeacherSignalError as e:
        if e.field is None:
            e.field = field
        raise


@dataclasses.dataclass
class TeacherSignal:
    """A teacher signal on disk (see the module docstring)."""
    directory: str
    centers: np.ndarray  # float32 (D, C), unit-norm columns
    files: list  # shard paths, in order
    manifest: dict
    embedding_size: int
    num_classes: int
    num_images: int
    flip: bool  # the shards also hold the embeddings of the flipped images

    def train_dataset(self, batch_size, **kwargs):
        """tfmargin.data.train_dataset over the shards: batches ({"image", "label", "teacher"},
        label); with flip=True and a flip signal, flipped images come with `teacher_flip`."""
        from tfmargin.data.pipeline import train_dataset

        kwargs.setdefault("num_classes", self.num_classes)
        return train_dataset(self.directory, batch_size, **kwargs)


# -- checksums -------------------------------------------------------------------------------

def sha256_file(path, start=0, length=None):
    """Hex sha256 of a file (or of `length` bytes from `start`), read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(start)
        left = math.inf if length is None else length
        while left > 0:
            block = f.read(int(min(_MIB, left)))
            if not block:
                break
            h.update(block)
            left -= len(block)
    return h.hexdigest()


def weights_sha256(model):
    """Hex sha256 of a model's weight values (shapes and bytes, in weight order): names a teacher
    that never was a file, and survives re-saving, unlike the file's own sha256."""
    import keras

    h = hashlib.sha256()
    for w in model.weights:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(w))
        h.update(f"{value.dtype.str}{value.shape};".encode())
        h.update(value.tobytes())
    return h.hexdigest()


def dataset_fingerprint(source):
    """{"kind", "path", "sha256", ...parts} of a training set: a .rec (or a directory holding
    train.rec) or identity folders. Cheap: see the module docstring for what it covers."""
    from tfmargin.data.folders import ImageFolder
    from tfmargin.data.sources import source_kind

    source = os.fspath(source)
    try:
        kind = source_kind(source)
    except ValueError as e:
        raise TeacherSignalError(str(e)) from None
    h = hashlib.sha256(f"{FORMAT} {kind}\n".encode())
    if kind == "rec":
        rec = source if source.endswith(".rec") else os.path.join(source, "train.rec")
        idx = os.path.splitext(rec)[0] + ".idx"
        prop = os.path.join(os.path.dirname(os.path.abspath(rec)), "property")
        size = os.path.getsize(rec)
        parts = {
            "rec_size": size,
            "idx_sha256": sha256_file(idx) if os.path.exists(idx) else None,
            "property": open(prop).read().strip() if os.path.exists(prop) else None,
            "head_sha256": sha256_file(rec, 0, _MIB),
            "tail_sha256": sha256_file(rec, max(0, size - _MIB)),
        }
        path = rec
    elif kind == "folders":
        folder = ImageFolder(source)
        listing = hashlib.sha256()
        for rel in folder.paths:
            listing.update(f"{rel}\0{os.path.getsize(os.path.join(source, rel))}\n".encode())
        parts = {"images": len(folder), "classes": folder.num_classes,
                 "listing_sha256": listing.hexdigest()}
        path = source
    else:
        raise TeacherSignalError(f"{source}: the teacher signal is made from a .rec or identity "
                                 "folders, not from TFRecord shards")
    h.update(json.dumps(parts, sort_keys=True).encode())
    return {"kind": kind, "path": os.path.abspath(path), "sha256": h.hexdigest(), **parts}


# -- the teacher -----------------------------------------------------------------------------

def _where(model, path=None):
    return os.fspath(path) if path is not None else f"model {getattr(model, 'name', model)!r}"


def _load_model(path):
    from tfmargin.models.io import load_model

    try:
        return load_model(path)
    except ModelFileError as e:
        raise TeacherSignalError(f"teacher: {e}") from None


def _unit_columns(centers, where):
    centers = np.asarray(centers)
    if centers.ndim != 2 or 0 in centers.shape:
        raise TeacherSignalError(f"{where}: centers must be a (D, C) array, got shape "
                                 f"{centers.shape}")
    c64 = centers.astype(np.float64)
    if not np.isfinite(c64).all():
        raise TeacherSignalError(f"{where}: centers hold NaN or inf")
    norms = np.linalg.norm(c64, axis=0)
    if (norms == 0).any():
        raise TeacherSignalError(f"{where}: class center {int(np.argmin(norms))} is all zeros")
    return (c64 / norms).astype(np.float32)


def teacher_centers(model):
    """The teacher's class centers as float32 (D, C) with unit-norm columns, from a classifier
    keras.Model holding a MarginHead (or any layer exposing `.centers`), a head layer, or a
    path to a saved classifier."""
    from tfmargin.models.io import find_centers

    if isinstance(model, (str, os.PathLike)):
        where, model = os.fspath(model), _load_model(model)
    else:
        where = _where(model)
    try:
        centers = find_centers(model, where)
    except ModelFileError as e:
        raise TeacherSignalError(str(e)) from None
    return _unit_columns(centers, f"{where} centers")


def find_backbone(model, where=None):
    """The embedding model inside a teacher (tfmargin.models.find_backbone), TeacherSignalError
    when there is none."""
    from tfmargin.models.io import find_backbone as find

    try:
        return find(model, where or _where(model))
    except ModelFileError as e:
        raise TeacherSignalError(str(e)) from None


@dataclasses.dataclass
class _Teacher:
    model: object  # the keras Model given or loaded
    backbone: object
    where: str
    path: str | None
    embedding_size: int
    image_size: int

    @classmethod
    def resolve(cls, teacher, teacher_path=None):
        import keras

        if isinstance(teacher, (str, os.PathLike)):
            teacher_path = os.fspath(teacher)
            teacher = _load_model(teacher_path)
        if not isinstance(teacher, keras.Model):
            raise TeacherSignalError(f"teacher: expected a keras Model or a .keras path, got "
                                     f"{type(teacher).__name__}")
        where = _where(teacher, teacher_path)
        backbone = find_backbone(teacher, where)
        shape = tuple(backbone.inputs[0].shape)
        if shape[-1] != 3 or not shape[1] or shape[1] != shape[2]:
            raise TeacherSignalError(f"{where}: the backbone takes {shape[1:]} inputs; expected "
                                     "square RGB images (H, H, 3)")
        return cls(teacher, backbone, where, teacher_path, int(backbone.outputs[0].shape[-1]),
                   int(shape[1]))

    def describe(self):
        name = self.backbone.name
        return {
            "path": os.path.abspath(self.path) if self.path else None,
            "sha256": sha256_file(self.path) if self.path else None,
            "weights_sha256": weights_sha256(self.backbone),
            "backbone": name,
            "params": int(self.backbone.count_params()),
            "embedding_size": self.embedding_size,
            "image_size": self.image_size,
        }


def _resolve_centers(centers, teacher):
    if centers is None:
        if teacher.backbone is teacher.model:
            raise TeacherSignalError(f"{teacher.where}: an embedding model without a head; give "
                                     "the class centers (centers=, --centers)")
        return teacher_centers(teacher.model), f"{teacher.where} head"
    if isinstance(centers, (str, os.PathLike)):
        path = os.fspath(centers)
        try:
            centers = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise TeacherSignalError(f"{path}: cannot load centers ({e})") from None
        return _unit_columns(centers, path), path
    return _unit_columns(centers, "centers"), "centers"


# -- the dataset -----------------------------------------------------------------------------

def _open_source(source):
    from tfmargin.data.sources import IndexedSource

    try:
        return IndexedSource(source)
    except (ValueError, OSError) as e:
        raise TeacherSignalError(str(e).splitlines()[0]) from None


def _check_labels(src, num_classes):
    try:
        labels = np.asarray(src.labels(), np.int64)
    except (ValueError, OSError) as e:  # LabelError / RecordIOError name the record already
        raise TeacherSignalError(str(e).splitlines()[0]) from None
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        i = int(bad[0])
        raise TeacherSignalError(f"{src.path}: record {src.key(i)} has label {labels[i]}, outside "
                                 f"the teacher's classes 0..{num_classes - 1}")
    return labels


def _image_batches(src, order, batch_size, image_size, flip):
    """tf.data batches (encoded bytes (b,), labels (b,), x) of the images at positions `order`:
    x float32 normalised images, the flipped copies appended when flip (2b rows); read and
    decoded in parallel, delivered in order."""
    import tensorflow as tf

    from tfmargin.data.images import decode_tensor, resize_tensor
    from tfmargin.data.pipeline import normalize

    n = len(order)

    def read(start):
        pairs = src.read_many(order[start:start + batch_size])
        data = np.empty(len(pairs), object)
        data[:] = [p[0] for p in pairs]
        return data, np.asarray([p[1] for p in pairs], np.int64)

    def read_op(start):
        data, labels = tf.numpy_function(read, [start], [tf.string, tf.int64])
        data.set_shape([None])
        labels.set_shape([None])
        return data, labels

    def decode(data, labels):
        images = tf.map_fn(lambda d: resize_tensor(decode_tensor(d), image_size), data,
                           fn_output_signature=tf.TensorSpec([image_size, image_size, 3],
                                                             tf.uint8))
        x = normalize(images)
        if flip:
            x = tf.concat([x, tf.reverse(x, [2])], 0)
        return data, labels, x

    ds = tf.data.Dataset.range(0, n, batch_size)
    ds = ds.map(read_op, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(2)


def _diagnose(src, positions, error):
    """The record that broke a batch, as a TeacherSignalError naming it."""
    from tfmargin.data.images import decode_image

    for i in positions:
        i = int(i)
        try:
            data, _, _ = src.read(i)
            decode_image(data, f"{src.path}: record {src.key(i)}")
        except (ValueError, OSError) as e:
            return TeacherSignalError(str(e).splitlines()[0])
    first = (getattr(error, "message", "") or str(error)).strip().splitlines()
    return TeacherSignalError(f"{src.path}: reading records {src.key(int(positions[0]))}.."
                              f"{src.key(int(positions[-1]))}: "
                              f"{first[0] if first else type(error).__name__}")


# -- writing ---------------------------------------------------------------------------------

class _StagedDirectory(AllOrNothing):
    """Everything is written into `path.partial`; close() moves it to `path` (replacing a
    previous signal there), abort() removes it. `path` must be new, empty or a signal."""

    def __init__(self, path):
        self.final = os.path.abspath(os.fspath(path))
        self.path = self.final + ".partial"
        shutil.rmtree(self.path, ignore_errors=True)  # left by a killed run: ours by its name
        os.makedirs(self.path)

    def close(self):
        if os.path.isdir(self.final) and not os.listdir(self.final):
            os.rmdir(self.final)
        if not os.path.exists(self.final):
            os.replace(self.path, self.final)
            return
        old = self.final + ".old"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(self.final, old)
        os.replace(self.path, self.final)
        shutil.rmtree(old)

    def abort(self):
        shutil.rmtree(self.path, ignore_errors=True)


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
    return max(1, min(num_images, math.ceil(total / _SHARD_BYTES)))


def extract_teacher_signal(teacher, source, output_dir, *, centers=None, flip=False,
                           batch_size=128, shards=None, teacher_path=None, log=print,
                           progress=True, shuffle=False, seed=0):
    """Compute and write a teacher signal; returns it as a TeacherSignal.

    teacher: a keras Model or a .keras path: the classifier (inputs image/label[/teacher], as
        tfmargin.demo.classifier_model builds it) or its embedding backbone (float32
        (B, H, H, 3) in [-1, 1] -> (B, D)).
    source: a .rec (insightface RecordIO with its .idx; or a directory holding train.rec) or
        identity folders.
    centers: (D, C) array or .npy path; default: the teacher classifier's head. Stored with
        unit-norm columns.
    flip: also store the embeddings of the horizontally flipped images (`teacher_flip`).
    shards: number of TFRecord shards (default: about 200 MB each).
    teacher_path: the .keras file an in-memory teacher was loaded from (its sha256 goes into
        the manifest; a path given as `teacher` is used directly).
    shuffle: write the records in a seeded random order instead of the dataset's. insightface
        .rec files are sorted by identity, and a streaming shuffle buffer over sorted shards
        sees only a few hundred identities at a time: pass shuffle=True for real data. Each
        record keeps its dataset key either way.
    Everything is checked before any image is read (embedding size == centers' D, dataset
    classes == centers' C, every label < C, output directory usable); errors are
    TeacherSignalError with one line naming the file, field or record.
    """
    import tensorflow as tf

    import tfmargin

    log = log or (lambda message: None)
    started = time.perf_counter()
    if batch_size < 1:
        raise TeacherSignalError(f"batch_size must be >= 1, got {batch_size}", "batch_size")
    with _about("teacher"):
        t = _Teacher.resolve(teacher, teacher_path)
    with _about("teacher" if centers is None else "centers"):
        centers, centers_from = _resolve_centers(centers, t)
    dim, num_classes = centers.shape
    if t.embedding_size != dim:
        raise TeacherSignalError(f"{t.where}: the teacher embeds into {t.embedding_size} "
                                 f"dimensions but the centers ({centers_from}) are {dim} x "
                                 f"{num_classes}; they must agree", "centers")
    with _about("source"):
        src = _open_source(source)
        n = len(src)
        if n == 0:
            raise TeacherSignalError(f"{src.path}: no images")
        if src.num_classes is not None and src.num_classes != num_classes:
            raise TeacherSignalError(f"{src.path}: the dataset has {src.num_classes} classes but "
                                     f"the teacher's centers ({centers_from}) have {num_classes}")
        _check_labels(src, num_classes)
        fingerprint = dataset_fingerprint(source)
    with _about("output_dir"):
        output_dir = _check_output(output_dir, src.path)
    if shards is None:
        shards = _default_shards(fingerprint, n, dim, flip)
    if not 1 <= shards <= n:
        raise TeacherSignalError(f"shards must be in 1..{n} (the number of images), got {shards}",
                                 "shards")
    teacher_info = t.describe()
    batch_size = min(batch_size, n)  # calls keep one shape: the last batch is padded to it
    order = (np.random.default_rng(seed).permutation(n) if shuffle
             else np.arange(n)).astype(np.int64)

    from tfmargin.data.progress import Progress
    from tfmargin.data.tfrecord import METADATA, TFRecordShardWriter

    log(f"teacher signal: embedding {n} images of {src.path}{' (+ flipped)' if flip else ''} "
        f"with {t.where}")
    norm_min, norm_max = math.inf, 0.0
    done = 0
    with _StagedDirectory(output_dir) as stage:
        with TFRecordShardWriter(stage.path, shards, num_classes=num_classes,
                                 image_size=t.image_size, source=fingerprint["path"]) as writer, \
                Progress(n, "teacher signal", enabled=progress) as bar:
            batches = iter(_image_batches(src, order, batch_size, t.image_size, flip))
            while done < n:
                try:
                    data, labels, x = next(batches)
                except StopIteration:
                    raise TeacherSignalError(f"{src.path}: ended after {done} of {n} "
                                             "images", "source") from None
                except tf.errors.OpError as e:
                    error = _diagnose(src, order[done:done + 2 * batch_size], e)
                    error.field = "source"
                    raise error from None
                b = len(labels)
                x = x.numpy()
                rows = x.shape[0]
                if rows < batch_size * (2 if flip else 1):  # one input shape: no retracing
                    pad = batch_size * (2 if flip else 1) - rows
                    x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
                emb = np.asarray(t.backbone.predict_on_batch(x), np.float32)[:rows]
                if emb.shape != (rows, dim):
                    raise TeacherSignalError(f"{t.where}: the backbone returned shape "
                                             f"{emb.shape} for {rows} images; expected "
                                             f"({rows}, {dim})", "teacher")
                finite = np.isfinite(emb).all(axis=1)
                if not finite.all():
                    i = order[done + int(np.argmin(finite)) % b]
                    raise TeacherSignalError(f"{t.where}: NaN or inf embedding of {src.path} "
                                             f"record {src.key(i)}", "teacher")
                norms = np.linalg.norm(emb.astype(np.float64), axis=1)
                norm_min, norm_max = min(norm_min, norms.min()), max(norm_max, norms.max())
                flipped = emb[b:] if flip else [None] * b
                labels, data = labels.numpy(), data.numpy()
                for j in range(b):
                    writer.write(data[j], labels[j], src.key(order[done + j]), emb[j],
                                 flipped[j])
                done += b
                bar.update(b)
        np.save(os.path.join(stage.path, CENTERS), centers)
        manifest = {
            "format": FORMAT,
            "tfmargin_version": tfmargin.__version__,
            "created": datetime.datetime.now(datetime.timezone.utc).strftime(
                "%Y-%m-%dT%H:%M:%SZ"),
            "teacher": teacher_info,
            "dataset": {**fingerprint, "num_images": n, "num_classes": num_classes},
            "embedding_size": dim,
            "num_classes": num_classes,
            "num_images": n,
            "flip": bool(flip),
            "embeddings": {
                "dtype": "float32", "as": "the teacher's raw output, not re-normalised",
                # The MarginDistillation head normalises either way.
                "normalised": bool(abs(norm_min - 1) < 1e-3 and abs(norm_max - 1) < 1e-3),
                "norm_min": float(norm_min), "norm_max": float(norm_max),
                "flip": "teacher_flip holds the embedding of the mirrored image" if flip else None,
            },
            "centers": {"file": CENTERS, "sha256": sha256_file(os.path.join(stage.path, CENTERS)),
                        "shape": [dim, num_classes], "from": centers_from, "normalised": True},
            "order": (f"a permutation of the dataset (seed {seed}): its record i is record "
                      f"i // {shards} of shard i % {shards}; keys name the dataset's records"
                      if shuffle else f"image i of the dataset is record i // {shards} of "
                      f"shard i % {shards}"),
            "shuffle": {"seed": seed} if shuffle else None,
            "shards": [{"file": name, "records": count,
                        "sha256": sha256_file(os.path.join(stage.path, name))}
                       for name, count in zip(writer.names, writer.counts)],
            "metadata": {"file": METADATA,
                         "sha256": sha256_file(os.path.join(stage.path, METADATA))},
            "seconds": round(time.perf_counter() - started, 3),
        }
        write_json(os.path.join(stage.path, MANIFEST), manifest)  # last: marks it complete
    log(f"teacher signal: {n} images, {num_classes} classes, {dim}-d"
        f"{' (+ flipped)' if flip else ''}, {shards} shard{'s' * (shards != 1)}, "
        f"{manifest['seconds']:.1f} s -> "
        f"{output_dir}")
    return _signal(output_dir, manifest, centers)


def _signal(directory, manifest, centers):
    return TeacherSignal(
        directory=directory, centers=centers,
        files=[os.path.join(directory, s["file"]) for s in manifest["shards"]],
        manifest=manifest, embedding_size=int(manifest["embedding_size"]),
        num_classes=int(manifest["num_classes"]), num_images=int(manifest["num_images"]),
        flip=bool(manifest["flip"]))


# -- loading ---------------------------------------------------------------------------------

def _read_manifest(directory):
    path = os.path.join(directory, MANIFEST)
    if not os.path.isdir(directory):
        raise TeacherSignalError(f"{directory}: teacher signal directory does not exist")
    if not os.path.exists(path):
        raise TeacherSignalError(f"{directory}: no {MANIFEST} (not a teacher signal, or its "
                                 "extraction did not finish)")
    try:
        with open(path) as f:
            manifest = json.load(f)
        if manifest.get("format") != FORMAT:
            raise TeacherSignalError(f"{path}: format {manifest.get('format')!r}, expected "
                                     f"{FORMAT!r}")
        for key in ("teacher", "dataset", "centers", "shards", "metadata", "embedding_size",
                    "num_classes", "num_images", "flip"):
            if key not in manifest:
                raise TeacherSignalError(f"{path}: field {key!r} is missing")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as e:
        raise TeacherSignalError(f"{path}: not a valid manifest ({e})") from None
    return manifest


def _check_file(path, sha256):
    if not os.path.isfile(path):
        raise TeacherSignalError(f"{path}: listed in the teacher signal's manifest but missing")
    got = sha256_file(path)
    if got != sha256:
        raise TeacherSignalError(f"{path}: sha256 {got[:16]}... differs from the manifest's "
                                 f"{sha256[:16]}...: the file changed after extraction")


def load_teacher_signal(directory, *, dataset=None, teacher=None, verify=True):
    """Read a teacher signal; returns a TeacherSignal.

    verify: re-hash centers.npy, dataset.json and every shard against the manifest.
    dataset: the .rec (or folders) the student will train on: its fingerprint must be the one
        the signal was made from.
    teacher: a .keras path (its sha256 must match the manifest's; when the signal was made from
        an in-memory teacher, the weights are compared) or a keras Model (weights compared).
    Errors are TeacherSignalError with one line naming the file.
    """
    directory = os.path.abspath(os.fspath(directory))
    manifest = _read_manifest(directory)
    made_from = manifest["dataset"].get("path")
    if dataset is not None:
        fp = dataset_fingerprint(dataset)
        if fp["sha256"] != manifest["dataset"].get("sha256"):
            raise TeacherSignalError(f"teacher signal {directory} was made from {made_from}, not "
                                     f"{fp['path']} (dataset fingerprints differ)")
    if teacher is not None:
        recorded = manifest["teacher"]
        made_by = recorded.get("path") or f"an in-memory {recorded.get('backbone')!r}"
        if isinstance(teacher, (str, os.PathLike)) and recorded.get("sha256"):
            if not os.path.isfile(teacher):
                raise TeacherSignalError(f"{os.fspath(teacher)}: teacher model file does not "
                                         "exist")
            if sha256_file(teacher) != recorded["sha256"]:
                raise TeacherSignalError(f"teacher signal {directory} was made by {made_by}, not "
                                         f"{os.path.abspath(teacher)} (sha256 differs)")
        else:
            given = _Teacher.resolve(teacher)
            if weights_sha256(given.backbone) != recorded.get("weights_sha256"):
                raise TeacherSignalError(f"teacher signal {directory} was made by {made_by}, not "
                                         f"{given.where} (weights differ)")
    entries = [manifest["centers"], manifest["metadata"], *manifest["shards"]]
    for entry in entries:
        path = os.path.join(directory, entry["file"])
        if verify:
            _check_file(path, entry["sha256"])
        elif not os.path.isfile(path):
            raise TeacherSignalError(f"{path}: listed in the teacher signal's manifest but "
                                     "missing")
    centers_path = os.path.join(directory, manifest["centers"]["file"])
    try:
        centers = np.load(centers_path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise TeacherSignalError(f"{centers_path}: cannot load ({e})") from None
    shape = [int(manifest["embedding_size"]), int(manifest["num_classes"])]
    if list(centers.shape) != shape or centers.dtype != np.float32:
        raise TeacherSignalError(f"{centers_path}: {centers.dtype} {centers.shape}, but the "
                                 f"manifest says float32 {tuple(shape)}")
    return _signal(directory, manifest, centers)
