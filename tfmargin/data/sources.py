"""What a `source` argument may name, and one random-access interface over the indexable ones.

* a `.rec` file, or a directory holding `train.rec` (insightface RecordIO);
* TFRecord shards: a `.tfrecord` file, a glob pattern, or a directory of `*.tfrecord` files
  (with the `dataset.json` the converter writes);
* an identity-folder root (one sub-folder of images per identity).
"""

import glob
import os

import numpy as np

from tfmargin.data.image_header import too_large
from tfmargin.data.folders import ImageFolder, is_image_folder
from tfmargin.data.recordio import RecordIO, RecordIOError


def source_kind(source):
    """'rec', 'tfrecord' or 'folders' for a source path; ValueError naming it otherwise."""
    source = os.fspath(source)
    if source.endswith(".rec") and os.path.isfile(source):
        return "rec"
    if os.path.isdir(source):
        if os.path.isfile(os.path.join(source, "train.rec")):
            return "rec"
        if glob.glob(os.path.join(source, "*.tfrecord")):
            return "tfrecord"
        if is_image_folder(source):
            return "folders"
    elif source.endswith(".tfrecord") or glob.has_magic(source):
        if glob.glob(source):
            return "tfrecord"
    raise ValueError(f"{source}: not a .rec file, a directory with train.rec, TFRecord shards or "
                     "identity folders (or it does not exist)")


class IndexedSource:
    """Random access to a .rec or identity folders: `len`, `num_classes`, `key(i)` (a string
    naming the record in messages), `read(i) -> (encoded bytes, label, float labels)`, and for
    many positions at once `read_many` (a list) or `read_packed` (one buffer, what the tf.data
    reader uses); `i` is a position in 0..len-1 (the order of `RecordIO.keys()` / the folder
    listing)."""

    def __init__(self, source, *, label_index=0, num_classes=None):
        source = os.fspath(source)
        self.kind = source_kind(source)
        if self.kind == "rec":
            path = source if source.endswith(".rec") else os.path.join(source, "train.rec")
            self.reader = RecordIO(path, label_index=label_index, num_classes=num_classes)
            if num_classes is not None:
                self.reader.num_classes = num_classes
            if self.reader.idx_path is None:
                self.reader.close()
                raise RecordIOError(f"{path}: the training pipeline needs the .idx beside the .rec "
                                 "(random access)")
            self._keys = self.reader.keys()
            self.path = path
            self.num_classes = self.reader.num_classes
        elif self.kind == "folders":
            self.reader = ImageFolder(source)
            self._keys = self.reader.paths
            self.path = source
            self.num_classes = self.reader.num_classes
            if num_classes is not None and num_classes < self.reader.num_classes:
                raise ValueError(f"{source}: {self.reader.num_classes} identity folders but "
                                 f"num_classes={num_classes}")
            self.num_classes = num_classes or self.num_classes
        else:
            raise ValueError(f"{source}: TFRecord shards are streamed, not indexed")

    def __len__(self):
        return len(self._keys)

    def key(self, i):
        return str(self._keys[i])

    def read(self, i):
        """(encoded bytes, class id, float labels tuple) of position i."""
        if self.kind == "rec":
            rec = self.reader.read(int(self._keys[i]))
            return rec.image, rec.label, rec.labels
        data, label = self.reader.read(int(i))
        return data, label, ()

    def read_many(self, positions):
        """[(encoded bytes, class id)] of positions (fast path, no float labels)."""
        if self.kind == "rec":
            return self.reader.read_many(self._keys[np.asarray(positions, np.int64)])
        return self.reader.read_many(positions)

    def read_packed(self, positions):
        """(data, starts, lengths, labels) of positions: the encoded images packed into one
        bytes buffer (image i = data[starts[i]:starts[i] + lengths[i]]), labels int32."""
        positions = np.asarray(positions, np.int64).reshape(-1)
        if self.kind == "rec":
            data, starts, lengths, labels = self.reader.read_packed(self._keys[positions])
        else:
            pairs = self.reader.read_many(positions)
            lengths = np.fromiter((len(p[0]) for p in pairs), np.int64, len(pairs))
            labels = np.fromiter((p[1] for p in pairs), np.int32, len(pairs))
            data, starts = b"".join(p[0] for p in pairs), np.cumsum(lengths) - lengths
        return data, starts, _screened(data, starts, lengths), labels

    def labels(self):
        if self.kind == "rec":
            return self.reader.labels()
        return self.reader.labels


def _screened(data, starts, lengths):
    """`lengths` with 0 for every image whose header declares more pixels than MAX_PIXELS: the
    decoder then drops it as a corrupt image (named in the skipped-images log, an error in
    strict mode) instead of allocating what a decompression bomb asks for."""
    bombs = [i for i, (s, n) in enumerate(zip(starts.tolist(), lengths.tolist()))
             if too_large(data[s:s + n])]
    if bombs:
        lengths = lengths.copy()
        lengths[bombs] = 0
    return lengths


def load_array(value, name, rows):
    """A (rows, D) float array from an array or a .npy path (memory-mapped), checked."""
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        path = os.fspath(value)
        try:
            value = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as e:
            raise ValueError(f"{name}: cannot load {path} ({e})") from None
    value = value if isinstance(value, np.ndarray) else np.asarray(value, np.float32)
    if value.ndim != 2 or value.shape[0] != rows:
        raise ValueError(f"{name}: expected an array of shape ({rows}, D) aligned with the "
                         f"source's images, got {value.shape}")
    return value
