"""RecordIO: the reader."""

import math
import os
import struct
import threading

import numpy as np

from tfmargin.data.recordio.format import (IR_FORMAT, IR_SIZE, LENGTH_MASK, MAGIC, MAGIC_BYTES,
                                           LabelError, Record, RecordIOError, class_of, is_meta,
                                           read_idx, read_property, unpack_payload)

FLOAT32_EXACT = 2 ** 24  # float32 holds every integer up to here
# The most one read asks for up front. A record's span runs to the next offset of the .idx, so a
# truncated .idx would make the last listed record span the rest of the file (gigabytes);
# longer records are read on in read_payload_at once their chunk header says how long they are.
FIRST_READ = 1 << 20


def _round32(value):
    """A key as the header's float32 label holds it."""
    return float(np.float32(value))


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
        try:
            self._open(idx_path, num_classes)
        except BaseException:
            self._file.close()  # a refused file leaves no handle behind
            raise

    def _open(self, idx_path, num_classes):
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
            spans = np.minimum(nxt - offsets, FIRST_READ)
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
                    self.header = self._check_header(labels, idx_path)
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
            if prop is not None and prop[0] != self.num_classes:
                raise RecordIOError(f"{self.path}: its header record counts {self.num_classes} "
                                    f"identities but property says {prop[0]}; one of them is "
                                    "damaged")
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
        buf = self._pread(min(span or 4096, FIRST_READ), offset)
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
            cflag, length = lrec >> 29, lrec & LENGTH_MASK
            padded = length + (-length % 4)
            need = pos + 8 + padded
            if offset + need > self.size:  # before reading: a damaged length asks for gigabytes
                raise RecordIOError(
                    f"{self.path}: truncated record at byte offset {offset + pos}: its chunk "
                    f"announces {length} bytes but the file ends at byte {self.size}")
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
            parts.append(MAGIC_BYTES)
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
        if not meta and flag > 0 and not -flag <= self.label_index < flag:
            raise LabelError(f"{self.path}: record {key} has {flag} label floats; label_index "
                             f"{self.label_index} is not one of them")
        value = 0 if meta else class_of(flag, label, labels, self.label_index)
        cls = int(value) if math.isfinite(value) else -1  # NaN / inf: refused just below
        if not meta:
            if cls != value or cls < 0 or (self.num_classes is not None
                                           and cls >= self.num_classes):
                bound = f"0..{self.num_classes - 1}" if self.num_classes else "a non-negative int"
                raise LabelError(f"{self.path}: record {key} has label {value:g}, outside {bound}")
        return Record(int(key), cls, labels, image, flag, rid, id2)

    def _check_header(self, labels, idx_path):
        """insightface's header record: images are keys 1..first-1, identity records keys
        first..end-1, all in the .idx; anything else means a damaged file."""
        where = f"{self.path}: header record 0"
        if len(labels) < 2 or not all(math.isfinite(v) and v == int(v) for v in labels[:2]):
            raise RecordIOError(f"{where} holds {tuple(labels)[:2]}, not two integer keys")
        first, end = int(labels[0]), int(labels[1])
        if not 1 <= first < end:
            raise RecordIOError(f"{where} gives images 1..{first - 1} and identities "
                                f"{first}..{end - 1}: impossible ranges")
        listed = self._record_keys  # sorted and unique (read_idx)
        if end > FLOAT32_EXACT:  # (module globals: a test can shrink them)
            # float32 labels round keys past 2^24 (WebFace42M): take the exact keys from the
            # .idx and the record there, when they round to what the header says
            first, end = self._exact_header(first, end, listed)
        if len(listed) != end or listed[0] != 0 or listed[-1] != end - 1:
            # never build 0..end: a damaged header can claim 1e38 keys
            gaps = np.flatnonzero(np.diff(listed) != 1)
            if listed[-1] >= end:
                what = f"it lists key {int(listed[listed >= end][0])} beyond them"
            elif listed[0] != 0:
                what = "key 0 is missing"
            elif gaps.size:
                what = f"key {int(listed[gaps[0]]) + 1} is missing"
            else:
                what = f"key {int(listed[-1]) + 1} is missing"
            raise RecordIOError(f"{idx_path}: the header record says keys 0..{end - 1} (images "
                                f"1..{first - 1}, identities {first}..{end - 1}), but {what}")
        return first, end

    def _exact_header(self, first, end, listed):
        if len(listed) and _round32(listed[-1] + 1) == _round32(end):
            end = int(listed[-1]) + 1
        # the first identity record: a header-like record right after the last image
        for key in range(max(1, first - 16), min(end, first + 16)):
            if key not in self._offset_of:  # the coverage check after this names the gap
                continue
            flag, _, _, _, _, image = self._payload_fields(key)
            if flag == 2 and not image and _round32(key) == _round32(first):
                return key, end
        return first, end

    # -- public -----------------------------------------------------------------------------
    def read(self, key):
        """The Record with this key (needs the .idx). An image key that holds a header or
        identity record (a .idx without insightface's header, or a damaged one) is an error."""
        record = self._make_record(key, self._payload_fields(key))
        if is_meta(record) and (self.header is None or 1 <= int(key) < self.header[0]):
            raise RecordIOError(f"{self.path}: record {key} is a header / identity record, not "
                                "an image; the .idx or the header record 0 is damaged")
        return record

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
        end = 8 + (lrec & LENGTH_MASK).astype(np.int64)
        start = head_size + 4 * flag
        image_record = (start < end) | ((start == end) & (flag != 2))  # not header/identity
        ok &= (magic == MAGIC) & (lrec >> 29 == 0) & (end <= got) & image_record
        label = words[:, 3].view("<f4").astype(np.float64)
        li = self.label_index
        ok &= (flag == 0) | ((-flag <= li) & (li < flag))  # else read() names the record
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
            self._image_keys = np.asarray([r.key for r in self.scan() if not is_meta(r)],
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
            yield from (r for r in self.scan() if not is_meta(r))
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
            flag, _, labels, _, _, image = self._payload_fields(key)
            ok = flag == 2 and not image and all(math.isfinite(v) and v == int(v)
                                                 for v in labels[:2])
            if ok:
                out[i] = labels[:2]
            if not ok or not 1 <= out[i, 0] <= out[i, 1] <= first:
                raise RecordIOError(f"{self.path}: identity record {key} gives images "
                                    f"{tuple(labels[:2])}, not a range inside 1..{first - 1}")
            if i and out[i, 0] < out[i - 1, 1]:  # insightface writes them in key order
                raise RecordIOError(f"{self.path}: identity record {key} gives images "
                                    f"{tuple(int(v) for v in out[i])}, overlapping the range "
                                    f"{tuple(int(v) for v in out[i - 1])} of record {key - 1}")
        return out

    def labels(self):
        """Class id of every image key (int64 array aligned with keys()); reads only the
        record headers unless a record is split or malformed."""
        out = np.empty(len(self.keys()), np.int64)
        for n, key in enumerate(self.keys()):
            key = int(key)
            head = self._pread(8 + IR_SIZE, self._offset(key)) if self._offset_of else b""
            if len(head) == 8 + IR_SIZE:
                magic, lrec, flag, label, _, _ = struct.unpack_from("<II" + IR_FORMAT[1:], head)
                length = lrec & LENGTH_MASK
                if (magic == MAGIC and lrec >> 29 == 0 and 0 <= flag <= 4096
                        and IR_SIZE + 4 * flag <= length  # the labels lie inside the record
                        and (flag == 0 or -flag <= self.label_index < flag)):
                    if flag:
                        at = self._offset(key) + 8 + IR_SIZE + 4 * (self.label_index % flag)
                        raw = self._pread(4, at)
                        label = struct.unpack("<f", raw)[0] if len(raw) == 4 else math.nan
                    cls = int(label) if math.isfinite(label) else -1
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
