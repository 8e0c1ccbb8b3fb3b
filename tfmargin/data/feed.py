"""A numpy training feed: the same batches as the tf.data pipeline, from decoded arrays, for
Keras on JAX where TensorFlow is absent (the lent GPU machines).

    feed = ArrayFeed.from_npz("train_arrays.npz", batch_size=512, seed=0)
    model.fit(feed, epochs=...)

The .npz holds `image` uint8 (N, H, W, 3), `label` int (N,) and, for students, `teacher`
float32 (N, D) (and `teacher_flip`); `write_arrays` makes one from any training source on a
machine with TensorFlow. Batch i of the whole run depends only on (seed, i), so a resumed run
(`start_step`) sees the same batches an uninterrupted one would. `load_rec_arrays` decodes a
`.rec` straight into such arrays, with Pillow where TensorFlow is missing.
"""

import os

import keras
import numpy as np

from tfmargin.pixels import to_model_input, to_pixels


def _normalize(images):
    if images.dtype == np.uint8:
        return to_model_input(images)
    return images.astype(np.float32, copy=False)


class ArrayFeed(keras.utils.PyDataset):
    """Batches `({"image", "label", "teacher"?}, label)` from in-memory arrays.

    images: uint8 (N, H, W, 3) (normalised to (x - 127.5) / 127.5 per batch) or float32 in
      [-1, 1]. labels: (N,) ints. teacher / teacher_flip: optional (N, D) float32.
    shuffle: a fresh permutation per pass over the data. flip: random horizontal flips; with a
      teacher only when teacher_flip exists (it replaces the teacher's embedding of flipped
      images), as in the tf.data pipeline.
    images_per_identity: K > 0 gives P x K identity batches (P = batch_size / K) for triplet
      losses: each pass cuts every identity's images, shuffled, into groups of K (dropping a
      remainder < K) and batches P shuffled groups.
    steps_per_epoch: Keras epoch length (default: one pass). Batches run on across Keras
      epochs and passes; start_step skips the first batches (a resumed run).
    """

    def __init__(self, images, labels, teacher=None, teacher_flip=None, *, batch_size,
                 shuffle=True, flip=False, seed=0, images_per_identity=0, steps_per_epoch=None,
                 start_step=0, **kwargs):
        super().__init__(**kwargs)
        self.images, self.labels = images, np.asarray(labels).astype(np.int32).reshape(-1)
        n = len(self.labels)
        if len(images) != n:
            raise ValueError(f"ArrayFeed: {len(images)} images for {n} labels")
        for name, arr in (("teacher", teacher), ("teacher_flip", teacher_flip)):
            if arr is not None and len(arr) != n:
                raise ValueError(f"ArrayFeed: {name} has {len(arr)} rows for {n} images")
        self.teacher, self.teacher_flip = teacher, teacher_flip
        self.batch_size, self.shuffle, self.seed = int(batch_size), shuffle, int(seed)
        self.flip = bool(flip) and (teacher is None or teacher_flip is not None)
        self.k = int(images_per_identity or 0)
        if self.k and self.batch_size % self.k:
            raise ValueError(f"ArrayFeed: batch_size {batch_size} is not a multiple of "
                             f"images_per_identity {self.k}")
        self._passes = {}
        self.batches_per_pass = len(self._pass(0)) // self.batch_size
        if self.batches_per_pass < 1:
            raise ValueError(f"ArrayFeed: {n} images give no full batch of {batch_size}")
        self.steps_per_epoch = int(steps_per_epoch or self.batches_per_pass)
        self.step0 = int(start_step)
        self.epoch = 0

    @classmethod
    def from_npz(cls, path, **kwargs):
        with np.load(os.fspath(path), allow_pickle=False) as z:
            missing = {"image", "label"} - set(z.files)
            if missing:
                raise ValueError(f"{path}: no {sorted(missing)[0]!r} array (expected image, "
                                 "label[, teacher, teacher_flip])")
            arrays = {name: z[name] for name in z.files}
        return cls(arrays["image"], arrays["label"], arrays.get("teacher"),
                   arrays.get("teacher_flip"), **kwargs)

    @property
    def num_classes(self):
        return int(self.labels.max()) + 1

    def _pass(self, p):
        """Image order of pass p (cached for the latest pass only)."""
        if p not in self._passes:
            rng = np.random.default_rng([self.seed, p])
            n = len(self.labels)
            if self.k:
                order = rng.permutation(n) if self.shuffle else np.arange(n)
                by_label = order[np.argsort(self.labels[order], kind="stable")]
                labels = self.labels[by_label]
                starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
                counts = np.diff(np.r_[starts, n])
                rank = np.arange(n) - np.repeat(starts, counts)
                keep = rank < np.repeat(counts // self.k * self.k, counts)
                groups = by_label[keep].reshape(-1, self.k)
                if self.shuffle:
                    groups = groups[rng.permutation(len(groups))]
                order = groups.reshape(-1)
            else:
                order = rng.permutation(n) if self.shuffle else np.arange(n)
            self._passes = {p: (order, rng.random(n) < 0.5)}
        return self._passes[p][0]

    def __len__(self):
        return self.steps_per_epoch

    def on_epoch_end(self):
        self.epoch += 1

    def batch_at(self, step):
        """Batch number `step` of the run, whatever the Keras epoch."""
        p, i = divmod(step, self.batches_per_pass)
        order = self._pass(p)
        flips = self._passes[p][1]
        index = order[i * self.batch_size:(i + 1) * self.batch_size]
        images = _normalize(self.images[index])
        features = {"label": self.labels[index]}
        teacher = None if self.teacher is None else np.asarray(self.teacher[index], np.float32)
        if self.flip:
            flip = flips[index]
            images = np.where(flip[:, None, None, None], images[:, :, ::-1], images)
            if teacher is not None:
                teacher = np.where(flip[:, None], self.teacher_flip[index], teacher)
        features["image"] = images
        if teacher is not None:
            features["teacher"] = teacher
        return features, features["label"]

    def __getitem__(self, idx):
        return self.batch_at(self.step0 + self.epoch * self.steps_per_epoch + idx)


def write_arrays(path, source, *, image_size=112, teacher=True):
    """Decode a training source (anything `train_dataset` reads; the teacher signal's shards
    carry `teacher`) into an ArrayFeed .npz, in source order. Needs TensorFlow."""
    from tfmargin.atomic import atomic_path
    from tfmargin.data import train_dataset

    ds = train_dataset(source, 256, image_size=image_size, shuffle=False, drop_remainder=False,
                       teacher=None if teacher else False)
    parts = {}
    for features, _ in ds.as_numpy_iterator():
        for name, value in features.items():
            parts.setdefault(name, []).append(value)
    arrays = {name: np.concatenate(v) for name, v in parts.items()}
    arrays["image"] = to_pixels(arrays["image"])  # exact: see tfmargin.pixels
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)
    return os.fspath(path)


def load_rec_arrays(rec_path, max_images=None):
    """(images uint8 (N, 112, 112, 3), labels int32 (N,)) of a `.rec`, in key order; with
    `max_images`, an evenly spaced subset. Works without TensorFlow (Pillow decodes)."""
    from tfmargin.data.images import decode_images
    from tfmargin.data.recordio import RecordIO

    with RecordIO(rec_path) as reader:
        keys = reader.keys()
        if max_images is not None and max_images < len(keys):
            keys = keys[np.linspace(0, len(keys) - 1, max_images).astype(int)]
        items = reader.read_many(keys)
    images = decode_images([jpeg for jpeg, _ in items], 112, where=os.fspath(rec_path))
    return images, np.asarray([label for _, label in items], np.int32)
