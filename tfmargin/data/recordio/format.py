"""The RecordIO byte layout: chunk framing, IRHeader payloads, .idx and property files."""

import os
import struct
from typing import NamedTuple

import numpy as np

from tfmargin.errors import TfmarginError

MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", MAGIC)
LENGTH_MASK = (1 << 29) - 1
IR_FORMAT = "<IfQQ"
IR_SIZE = struct.calcsize(IR_FORMAT)  # 24


class RecordIOError(TfmarginError, ValueError):
    """A .rec / .idx file that cannot be read; the message names the file and the byte offset."""


class LabelError(TfmarginError, ValueError):
    """A record whose class label is not an integer in 0..num_classes-1; names the record."""


class Record(NamedTuple):
    """One decoded record. `label` is the class id (int); `labels` all float labels (a tuple,
    empty when the record stores a scalar label); `image` the encoded image bytes (empty for
    header and identity records)."""
    key: int
    label: int
    labels: tuple
    image: bytes
    flag: int
    id: int
    id2: int


def pack_payload(image, label=0, labels=None, id=0, id2=0):
    """IRHeader + labels + image bytes, as `mx.recordio.pack` writes them."""
    if labels is not None:
        labels = np.asarray(labels, dtype="<f4").reshape(-1)
        header = struct.pack(IR_FORMAT, labels.size, 0.0, int(id), int(id2))
        return header + labels.tobytes() + bytes(image)
    return struct.pack(IR_FORMAT, 0, float(label), int(id), int(id2)) + bytes(image)


def unpack_payload(payload, where="record"):
    """(flag, scalar_label, labels tuple, id, id2, image bytes) of one payload."""
    if len(payload) < IR_SIZE:
        raise RecordIOError(f"{where}: payload of {len(payload)} bytes is shorter than the "
                            f"{IR_SIZE}-byte IRHeader")
    flag, label, rid, id2 = struct.unpack_from(IR_FORMAT, payload, 0)
    labels = ()
    start = IR_SIZE
    if flag > 0:
        end = start + 4 * flag
        if end > len(payload):
            raise RecordIOError(f"{where}: IRHeader announces {flag} float labels but the payload "
                                f"has only {len(payload) - IR_SIZE} bytes after the header")
        labels = tuple(float(x) for x in np.frombuffer(payload, "<f4", flag, start))
        start = end
    return flag, label, labels, rid, id2, bytes(payload[start:])


def encode_chunks(payload):
    """The chunk bytes dmlc-core's RecordIOWriter::WriteRecord emits for one payload."""
    if len(payload) >= 1 << 29:
        raise ValueError(f"RecordIO records must be < 2**29 bytes, got {len(payload)}")
    view = memoryview(payload)
    out = []
    start = 0
    # Only 4-byte-aligned occurrences matter: the reader looks for magic at chunk boundaries.
    pos = payload.find(MAGIC_BYTES)
    while pos != -1:
        if pos % 4 == 0:
            flag = 1 if start == 0 else 2
            out.append(MAGIC_BYTES + struct.pack("<I", (flag << 29) | (pos - start)))
            out.append(view[start:pos])
            start = pos + 4
            pos = payload.find(MAGIC_BYTES, start)
        else:
            pos = payload.find(MAGIC_BYTES, pos + 1)
    flag = 3 if start else 0
    rest = len(payload) - start
    out.append(MAGIC_BYTES + struct.pack("<I", (flag << 29) | rest))
    out.append(view[start:])
    out.append(b"\0" * (-rest % 4))
    return b"".join(out)


def class_of(flag, label, labels, label_index):
    return labels[label_index] if flag > 0 else label


def is_meta(record):
    return record.flag == 2 and not record.image


def read_idx(idx_path):
    """{key: offset} of an .idx file (lines `key<TAB>offset`, any order)."""
    keys, offsets = [], []
    with open(idx_path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.split()
            try:
                key, offset = int(parts[0]), int(parts[1])
                if not (0 <= key < 2 ** 63 and 0 <= offset < 2 ** 63):
                    raise ValueError
            except (IndexError, ValueError):
                raise RecordIOError(f"{idx_path}:{lineno}: expected 'key<TAB>offset' (two "
                                    f"non-negative integers), got {line[:60]!r}") from None
            keys.append(key)
            offsets.append(offset)
    if not keys:
        raise RecordIOError(f"{idx_path}: empty index (no records)")
    if len(set(keys)) != len(keys):
        raise RecordIOError(f"{idx_path}: a key is listed twice")
    return np.asarray(keys, np.int64), np.asarray(offsets, np.int64)


def read_property(directory):
    """(num_classes, height, width) from insightface's `property` file, or None when absent."""
    path = os.path.join(directory, "property")
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="ascii") as f:
            text = f.readline(256).strip()
    except UnicodeDecodeError:
        raise RecordIOError(f"{path}: not text; expected 'num_classes,height,width'") from None
    try:
        values = [int(v) for v in text.split(",")]
        if len(values) != 3 or min(values) < 1:
            raise ValueError
    except ValueError:
        raise RecordIOError(f"{path}: expected 'num_classes,height,width' (positive integers), "
                            f"got {text!r}") from None
    return tuple(values)
