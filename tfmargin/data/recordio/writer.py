"""RecordIOWriter and write_insightface_dataset: files that RecordIO and insightface read."""

import io
import os

import numpy as np

from tfmargin.atomic import AllOrNothing, write_bytes
from tfmargin.data.recordio.format import MAGIC_BYTES, LabelError, encode_chunks, pack_payload


class RecordIOWriter(AllOrNothing):
    """Writes `.rec` + `.idx` (and `property`) that `RecordIO` and insightface's tools accept.

        with RecordIOWriter("out/train.rec", header=True, image_size=112) as w:
            for jpeg, label in items:               # grouped by identity when header=True
                w.write(jpeg, label)                # keys 1, 2, ... (0 with header=False)
            # optional: w.write(jpeg, labels=[cls, *floats]) stores multi-float labels

    `write(image, label=None, key=None, labels=None)` appends one record and returns its key:
    `image` is the encoded bytes (JPEG by convention), `label` the int class id, `labels` an
    optional float sequence stored as insightface multi-float labels (the class then is
    labels[0] unless `label_index` says otherwise). Keys default to consecutive integers.

    With `header=True` (insightface datasets) images take keys 1..N and, on close, the header
    record 0 (flag 2, [N+1, N+1+num_classes]) and one identity record per class (flag 2,
    [first_image_key, end_image_key)) are appended, as insightface's face2rec2 does; images of
    one identity must then be consecutive. `property` (`num_classes,H,W`) is written beside the
    .rec when `write_property` (default: same as header). All files are written under temporary
    names and moved into place on a clean close, so a failed run leaves existing files intact.
    """

    def __init__(self, path, idx_path=None, *, header=False, num_classes=None, image_size=112,
                 write_property=None, label_index=0):
        self.path = os.fspath(path)
        self.idx_path = idx_path or os.path.splitext(self.path)[0] + ".idx"
        self.property_path = os.path.join(os.path.dirname(os.path.abspath(self.path)), "property")
        self.header = header
        self.num_classes = num_classes
        if isinstance(image_size, int):
            image_size = (image_size, image_size)
        self.image_size = tuple(image_size)
        self.write_property = header if write_property is None else write_property
        self.label_index = label_index
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self._tmp_rec = self.path + ".tmp"
        self._tmp_idx = self.idx_path + ".tmp"
        self._rec = open(self._tmp_rec, "wb")
        self._idx = io.open(self._tmp_idx, "w")
        self._offset = 0
        self._next_key = 1 if header else 0
        self._seen = set()
        self._ranges = []  # [label, first_key, end_key] runs of consecutive labels
        self._max_label = -1
        self.count = 0
        self.split_records = 0
        self._closed = False

    def write_payload(self, key, payload):
        """Append a raw payload (IRHeader included) under `key`."""
        key = int(key)
        if key in self._seen:
            raise ValueError(f"{self.path}: key {key} written twice")
        self._seen.add(key)
        chunk = encode_chunks(payload)
        self.split_records += chunk.count(MAGIC_BYTES) > 1
        self._rec.write(chunk)
        self._idx.write(f"{key}\t{self._offset}\n")
        self._offset += len(chunk)
        return key

    def write(self, image, label=None, key=None, labels=None):
        """Append one image record; returns its key."""
        if labels is not None:
            labels = [float(x) for x in np.asarray(labels, np.float32).reshape(-1)]
            if label is None:
                label = labels[self.label_index]
        if label is None:
            raise ValueError(f"{self.path}: write() needs a label or labels")
        cls = int(label)
        if cls != label or cls < 0:
            raise LabelError(f"{self.path}: label {label!r} of record {self._next_key} is not a "
                             "non-negative integer")
        if self.num_classes is not None and cls >= self.num_classes:
            raise LabelError(f"{self.path}: label {cls} of record {self._next_key} is outside "
                             f"0..{self.num_classes - 1}")
        if key is None:
            key = self._next_key
        elif self.header and key == 0:
            raise ValueError(f"{self.path}: key 0 is the header record when header=True")
        self._next_key = max(self._next_key, int(key) + 1)
        self.write_payload(key, pack_payload(image, cls, labels, id=key))
        self.count += 1
        self._max_label = max(self._max_label, cls)
        if self._ranges and self._ranges[-1][0] == cls and self._ranges[-1][2] == key:
            self._ranges[-1][2] = key + 1
        else:
            self._ranges.append([cls, key, key + 1])
        return key

    def _write_header_records(self):
        num_classes = self.num_classes if self.num_classes is not None else self._max_label + 1
        by_class = {}
        for cls, start, end in self._ranges:
            if cls in by_class:
                raise ValueError(f"{self.path}: images of identity {cls} are not consecutive "
                                 f"(keys {by_class[cls][0]}.. and {start}..); header=True needs "
                                 "images grouped by identity (use write_insightface_dataset)")
            by_class[cls] = (start, end)
        first = self._next_key
        self.write_payload(0, pack_payload(b"", labels=[first, first + num_classes], id=0))
        for cls in range(num_classes):
            start, end = by_class.get(cls, (first, first))  # an identity without images
            self.write_payload(first + cls, pack_payload(b"", labels=[start, end], id=first + cls))
        return num_classes

    def close(self):
        """Finish the files and move them into place."""
        if self._closed:
            return
        num_classes = self.num_classes
        try:
            if self.header:
                num_classes = self._write_header_records()
            elif num_classes is None:
                num_classes = self._max_label + 1
            self._rec.close()
            self._idx.close()
        except BaseException:
            self.abort()
            raise
        self._closed = True
        os.replace(self._tmp_rec, self.path)
        os.replace(self._tmp_idx, self.idx_path)
        if self.write_property:
            write_bytes(self.property_path,
                        f"{num_classes},{self.image_size[0]},{self.image_size[1]}\n".encode())
        self.num_classes = num_classes

    def abort(self):
        """Drop everything written so far; existing files at the target paths stay untouched."""
        self._closed = True
        for f, name in ((self._rec, self._tmp_rec), (self._idx, self._tmp_idx)):
            f.close()
            if os.path.exists(name):
                os.remove(name)


def write_insightface_dataset(directory, items, *, num_classes=None, image_size=112,
                              name="train", progress=None):
    """Write `directory/{name}.rec`, `.idx` and `property` as an insightface dataset.

    `items` is an iterable of (label, encoded_image) in any order; they are grouped by label
    (stable within a label) so that the identity records are valid. Returns the number of
    images written.
    """
    by_label = {}
    for label, image in items:
        by_label.setdefault(int(label), []).append(image)
    os.makedirs(directory, exist_ok=True)
    with RecordIOWriter(os.path.join(directory, f"{name}.rec"), header=True,
                        num_classes=num_classes, image_size=image_size) as writer:
        for label in sorted(by_label):
            for image in by_label[label]:
                writer.write(image, label)
                if progress is not None:
                    progress(1)
    return writer.count
