"""insightface / MXNet RecordIO (`train.rec`, `train.idx`, `property`), without mxnet.

Byte layout (docs/formats.md, dmlc-core `recordio.h`): every chunk is `uint32 magic 0xced7230a`,
`uint32 lrec` (little-endian), `lrec >> 29` the continuation flag and `lrec & (2**29-1)` the length,
then the payload padded with zeros to 4 bytes. A record whose payload holds the magic value at a
4-byte-aligned position is split there into chunks flagged 1 (start), 2 (middle), 3 (end); the
reader puts the magic bytes back between the parts. The `.idx` beside the `.rec` is text,
`key<TAB>byte_offset` per record, in any order.

A record's payload starts with the 24-byte IRHeader `<IfQQ` (flag, label, id, id2). When flag > 0,
`flag` float32 labels follow and the scalar label is 0; the rest is the encoded image. insightface
datasets carry a header record, key 0, with flag 2 and labels `[first_identity_key, end_key]`:
images are keys 1 .. first_identity_key-1, and keys first_identity_key .. end_key-1 are one record
per identity, with an empty body and labels `[first_image_key, end_image_key)`. Shuffled files have
no header record (key 0 is an image, flag 0).
"""

import io
import os
import struct
import threading
from typing import NamedTuple

import numpy as np

from tfmargin.atomic import AllOrNothing, write_bytes
from tfmargin.errors import TfmarginError

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_LENGTH_MASK = (1 << 29) - 1
_IR_FORMAT = "<IfQQ"
IR_SIZE = struct.calcsize(_IR_FORMAT)  # 24


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
        header = struct.pack(_IR_FORMAT, labels.size, 0.0, int(id), int(id2))
        return header + labels.tobytes() + bytes(image)
    return struct.pack(_IR_FORMAT, 0, float(label), int(id), int(id2)) + bytes(image)


def unpack_payload(payload, where="record"):
    """(flag, scalar_label, labels tuple, id, id2, image bytes) of one payload."""
    if len(payload) < IR_SIZE:
        raise RecordIOError(f"{where}: payload of {len(payload)} bytes is shorter than the "
                            f"{IR_SIZE}-byte IRHeader")
    flag, label, rid, id2 = struct.unpack_from(_IR_FORMAT, payload, 0)
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
    pos = payload.find(_MAGIC_BYTES)
    while pos != -1:
        if pos % 4 == 0:
            flag = 1 if start == 0 else 2
            out.append(_MAGIC_BYTES + struct.pack("<I", (flag << 29) | (pos - start)))
            out.append(view[start:pos])
            start = pos + 4
            pos = payload.find(_MAGIC_BYTES, start)
        else:
            pos = payload.find(_MAGIC_BYTES, pos + 1)
    flag = 3 if start else 0
    rest = len(payload) - start
    out.append(_MAGIC_BYTES + struct.pack("<I", (flag << 29) | rest))
    out.append(view[start:])
    out.append(b"\0" * (-rest % 4))
    return b"".join(out)


def _class_of(flag, label, labels, label_index):
    return labels[label_index] if flag > 0 else label


def _is_meta(record):
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
                keys.append(int(parts[0]))
                offsets.append(int(parts[1]))
            except (IndexError, ValueError):
                raise RecordIOError(f"{idx_path}:{lineno}: expected 'key<TAB>offset', got "
                                    f"{line[:60]!r}") from None
    return np.asarray(keys, np.int64), np.asarray(offsets, np.int64)


def read_property(directory):
    """(num_classes, height, width) from insightface's `property` file, or None when absent."""
    path = os.path.join(directory, "property")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        text = f.readline().strip()
    try:
        values = [int(v) for v in text.split(",")]
        if len(values) != 3:
            raise ValueError
    except ValueError:
        raise RecordIOError(f"{path}: expected 'num_classes,height,width', got {text!r}") from None
    return tuple(values)


class RecordIO:
    """Reader for an insightface `.rec` (+ `.idx`), with one file handle and positional reads.

        reader = RecordIO("faces_emore/train.rec")
        len(reader), reader.num_classes          # images, identities
        rec = reader.read(reader.keys()[0])      # Record(key, label, labels, image, ...)
        for rec in reader: ...                   # image records only, in key order
        reader.read_many(keys)                   # [(image bytes, class id)]
        data, starts, lengths, labels = reader.read_packed(keys)  # one buffer (tf.data)

    `keys()` / `len()` / iteration cover image records only (the header record 0 and the
    identity records of insightface datasets are excluded); `record_keys()` lists every key of
    the `.idx`. Without an `.idx` only sequential iteration works (`scan()` yields every record,
    keyed by the IRHeader id field, which insightface and im2rec set to the key).
    `label_index` picks the class among multi-float labels (0 as in insightface; -1 for
    MarginDistillation files whose labels are `embedding + [class]`). `num_classes` comes from
    the header record, else the `property` file, else the argument; when known, a label outside
    0..num_classes-1 raises LabelError naming the record. Reads are thread-safe (os.pread).
    """

    def __init__(self, path, idx_path=None, *, label_index=0, num_classes=None):
        self.path = os.fspath(path)
        if idx_path is None:
            candidate = os.path.splitext(self.path)[0] + ".idx"
            idx_path = candidate if os.path.exists(candidate) else None
        self.idx_path = idx_path
        self.label_index = label_index
        self._file = open(self.path, "rb")
        self._fd = self._file.fileno()
        self._lock = threading.Lock()  # only for platforms without os.pread
        self.size = os.fstat(self._fd).st_size
        self._offset_of = None
        self._span_of = None
        self.header = None  # (first_identity_key, end_key) of an insightface header record
        self._image_keys = None
        if idx_path is not None:
            keys, offsets = read_idx(idx_path)
            bad = (offsets < 0) | (offsets >= max(self.size, 1))
            if bad.any():
                i = int(np.argmax(bad))
                raise RecordIOError(f"{idx_path}: record {keys[i]} points at byte offset "
                                    f"{offsets[i]}, past the end of {self.path} ({self.size} "
                                    "bytes): the .rec is truncated or the .idx is not its own")
            self._offset_of = dict(zip(keys.tolist(), offsets.tolist()))
            # One read per record: the bytes up to the next record's offset (or the file end).
            ends = np.sort(np.unique(np.append(offsets, self.size)))
            nxt = ends[np.minimum(np.searchsorted(ends, offsets, side="right"), len(ends) - 1)]
            spans = nxt - offsets
            self._span_of = dict(zip(keys.tolist(), spans.tolist()))
            # The same index as sorted arrays, for vectorised lookups (read_packed); a key listed
            # twice keeps its last offset, as the dicts do.
            last = len(keys) - 1 - np.unique(keys[::-1], return_index=True)[1]
            self._sorted_keys, self._sorted_offsets = keys[last], offsets[last]
            self._sorted_spans = spans[last]
            self._record_keys = np.sort(keys)
            if 0 in self._offset_of:
                flag, _, labels, _, _, image = self._payload_fields(0)
                if flag == 2 and not image:
                    self.header = (int(labels[0]), int(labels[1]))
            if self.header is not None:
                first, end = self.header
                k = self._record_keys
                self._image_keys = k[(k >= 1) & (k < first)]
            else:
                self._image_keys = self._record_keys
        prop = read_property(os.path.dirname(os.path.abspath(self.path)))
        self.image_size = prop[1:] if prop else None
        if self.header is not None:
            self.num_classes = self.header[1] - self.header[0]
        elif prop is not None:
            self.num_classes = prop[0]
        else:
            self.num_classes = num_classes

    # -- low level --------------------------------------------------------------------------
    def _pread(self, n, offset):
        if hasattr(os, "pread"):
            return os.pread(self._fd, n, offset)
        with self._lock:
            self._file.seek(offset)
            return self._file.read(n)

    def read_payload_at(self, offset, span=None):
        """(payload bytes, offset of the next record) of the record that starts at `offset`."""
        buf = self._pread(span or 4096, offset)
        pos = 0
        parts = []
        while True:
            if len(buf) - pos < 8:
                buf = buf[pos:] + self._pread(max(4096, 8), offset + len(buf))
                offset, pos = offset + pos, 0
                if len(buf) < 8:
                    if not buf and not parts:
                        return None, offset
                    raise RecordIOError(f"{self.path}: truncated record at byte offset {offset}: "
                                        f"{len(buf)} bytes left where an 8-byte chunk header "
                                        "is due")
            magic, lrec = struct.unpack_from("<II", buf, pos)
            if magic != MAGIC:
                raise RecordIOError(f"{self.path}: bad magic 0x{magic:08x} at byte offset "
                                    f"{offset + pos} (expected 0x{MAGIC:08x}); the file is "
                                    "corrupt or the .idx does not match it")
            cflag, length = lrec >> 29, lrec & _LENGTH_MASK
            padded = length + (-length % 4)
            need = pos + 8 + padded
            if need > len(buf):
                more = self._pread(need - len(buf), offset + len(buf))
                buf += more
                if need > len(buf):
                    raise RecordIOError(
                        f"{self.path}: truncated record at byte offset {offset + pos}: its chunk "
                        f"announces {length} bytes but the file ends at byte {self.size}")
            parts.append(buf[pos + 8:pos + 8 + length])
            pos = need
            if cflag in (0, 3):
                break
            parts.append(_MAGIC_BYTES)
        return b"".join(parts), offset + pos

    def _payload_fields(self, key):
        payload, _ = self.read_payload_at(self._offset(key), self._span_of.get(key))
        return unpack_payload(payload, f"{self.path}: record {key}")

    def _offset(self, key):
        if self._offset_of is None:
            raise RecordIOError(f"{self.path}: random access needs the .idx file beside it "
                                "(only sequential iteration works without one)")
        try:
            return self._offset_of[int(key)]
        except KeyError:
            raise KeyError(f"{self.path}: no record with key {key}") from None

    def _make_record(self, key, fields):
        flag, label, labels, rid, id2, image = fields
        meta = flag == 2 and not image  # header / identity record
        value = 0 if meta else _class_of(flag, label, labels, self.label_index)
        cls = int(value)
        if not meta:
            if cls != value or (self.num_classes is not None and not 0 <= cls < self.num_classes):
                bound = f"0..{self.num_classes - 1}" if self.num_classes else "a non-negative int"
                raise LabelError(f"{self.path}: record {key} has label {value:g}, outside {bound}")
        return Record(int(key), cls, labels, image, flag, rid, id2)

    # -- public -----------------------------------------------------------------------------
    def read(self, key):
        """The Record with this key (needs the .idx)."""
        return self._make_record(key, self._payload_fields(key))

    def read_many(self, keys):
        """[(image bytes, class id)] for `keys` (see read_packed)."""
        data, starts, lengths, labels = self.read_packed(keys)
        return [(data[s:s + n], c) for s, n, c in
                zip(starts.tolist(), lengths.tolist(), labels.tolist())]

    def read_packed(self, keys):
        """The images and class ids of `keys` in one buffer, for the tf.data reader:
        `(data, starts, lengths, labels)` with image i = data[starts[i]:starts[i] + lengths[i]]
        (int64 arrays) and labels int32. One pread per record; headers and labels are parsed
        with numpy over the whole batch, so the Python work per record is the read call alone.
        Records that are not plain single-chunk image records (split records, header or
        identity records) and every error case go through read(), which raises the precise
        error (truncated record, bad magic, label out of range) for the first such key.
        """
        if self._offset_of is None:
            self._offset(0)  # raises: random access needs the .idx
        keys = np.asarray(keys, np.int64).reshape(-1)
        n = len(keys)
        if n and not len(self._sorted_keys):
            raise KeyError(f"{self.path}: no record with key {keys[0]}")
        at = np.minimum(np.searchsorted(self._sorted_keys, keys), len(self._sorted_keys) - 1)
        missing = self._sorted_keys[at] != keys if n else np.zeros(0, bool)
        if missing.any():
            raise KeyError(f"{self.path}: no record with key {keys[np.argmax(missing)]}")
        pread = self._pread
        chunks = [pread(span, offset) for span, offset in
                  zip(self._sorted_spans[at].tolist(), self._sorted_offsets[at].tolist())]
        data = b"".join(chunks)
        got = np.fromiter(map(len, chunks), np.int64, n)
        base = np.cumsum(got) - got
        head_size = 8 + IR_SIZE
        ok = got >= head_size
        buf = np.frombuffer(data, np.uint8)
        if len(buf) < head_size:
            ok[:] = False
            base[:] = 0
            words = np.zeros((n, head_size // 4), np.uint32)
        else:
            rows = np.where(ok, base, 0)[:, None] + np.arange(head_size)
            words = buf[rows].view("<u4")  # magic, lrec, flag, label, id (2), id2 (2)
        magic, lrec, flag = words[:, 0], words[:, 1], words[:, 2].astype(np.int64)
        end = 8 + (lrec & _LENGTH_MASK).astype(np.int64)
        start = head_size + 4 * flag
        image_record = (start < end) | ((start == end) & (flag != 2))  # not header/identity
        ok &= (magic == MAGIC) & (lrec >> 29 == 0) & (end <= got) & image_record
        label = words[:, 3].view("<f4").astype(np.float64)
        multi = ok & (flag > 0)
        if multi.any():  # class = labels[label_index]; inside the record since start <= end
            pos = base + head_size + 4 * (self.label_index % np.maximum(flag, 1))
            picked = buf[np.where(multi, pos, 0)[:, None] + np.arange(4)].view("<f4")[:, 0]
            label = np.where(multi, picked, label)
        finite = np.isfinite(label) & (np.abs(label) < 2 ** 31)
        cls = np.where(finite, label, -1).astype(np.int64)
        ok &= finite & (cls == label) & (cls >= 0)
        if self.num_classes is not None:
            ok &= cls < self.num_classes
        starts, lengths = base + start, end - start
        if not ok.all():
            extra, size = [], len(data)
            for i in np.flatnonzero(~ok).tolist():
                record = self.read(int(keys[i]))  # raises the precise error
                extra.append(record.image)
                starts[i], lengths[i], cls[i] = size, len(record.image), record.label
                size += len(record.image)
            data = data + b"".join(extra)
        return data, starts, lengths, cls.astype(np.int32)

    def keys(self):
        """Image keys (int64 array, ascending)."""
        if self._image_keys is None:
            self._image_keys = np.asarray([r.key for r in self.scan() if not _is_meta(r)],
                                          np.int64)
        return self._image_keys

    def record_keys(self):
        """Every key of the .idx, header and identity records included."""
        if self._offset_of is None:
            return np.asarray([r.key for r in self.scan()], np.int64)
        return self._record_keys

    def offsets(self, keys):
        """Byte offsets of `keys` (int64 array)."""
        return np.asarray([self._offset(k) for k in keys], np.int64)

    def __len__(self):
        return len(self.keys())

    def __iter__(self):
        """Image records in key order (by .idx), or in file order without an .idx."""
        if self._offset_of is None:
            yield from (r for r in self.scan() if not _is_meta(r))
        else:
            for key in self.keys():
                yield self.read(key)

    def scan(self):
        """Every record in file order, read sequentially without the .idx (keyed by IRHeader id)."""
        offset = 0
        while offset < self.size:
            payload, nxt = self.read_payload_at(offset, 1 << 16)
            if payload is None:
                break
            fields = unpack_payload(payload, f"{self.path}: record at byte offset {offset}")
            yield self._make_record(fields[3], fields)
            offset = nxt

    def identity_ranges(self):
        """(num_classes, 2) int64 array of [first_image_key, end_image_key) per identity, from
        the identity records of an insightface dataset; None for files without a header."""
        if self.header is None:
            return None
        first, end = self.header
        out = np.zeros((end - first, 2), np.int64)
        for i, key in enumerate(range(first, end)):
            flag, _, labels, _, _, _ = self._payload_fields(key)
            out[i] = labels[:2]
        return out

    def labels(self):
        """Class id of every image key (int64 array aligned with keys()); reads only the
        record headers unless a record is split or malformed."""
        out = np.empty(len(self.keys()), np.int64)
        for n, key in enumerate(self.keys()):
            key = int(key)
            head = self._pread(8 + IR_SIZE, self._offset(key)) if self._offset_of else b""
            if len(head) == 8 + IR_SIZE:
                magic, lrec, flag, label, _, _ = struct.unpack_from("<II" + _IR_FORMAT[1:], head)
                if magic == MAGIC and lrec >> 29 == 0 and 0 <= flag <= 4096:
                    if flag:
                        at = self._offset(key) + 8 + IR_SIZE + 4 * (self.label_index % flag)
                        label = struct.unpack("<f", self._pread(4, at))[0]
                    cls = int(label)
                    if cls == label and cls >= 0 and (self.num_classes is None
                                                      or cls < self.num_classes):
                        out[n] = cls
                        continue
            out[n] = self.read(key).label
        return out

    def close(self):
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return (f"RecordIO({self.path!r}, images={len(self) if self._offset_of else '?'}, "
                f"num_classes={self.num_classes})")


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
        self.split_records += chunk.count(_MAGIC_BYTES) > 1
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
