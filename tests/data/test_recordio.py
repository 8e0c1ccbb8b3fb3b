"""RecordIO: writer -> reader round trips checked against an independent byte-level parser."""

import os
import struct

import numpy as np
import pytest

from tfmargin.data.recordio import (MAGIC, LabelError, RecordIO, RecordIOError, RecordIOWriter,
                                    write_insightface_dataset)

MAGIC_BYTES = struct.pack("<I", MAGIC)


def reference_parse(rec_path):
    """Independent reader written from dmlc-core's RecordIOReader::NextRecord: a list of
    (offset, payload) in file order."""
    data = open(rec_path, "rb").read()
    out, pos = [], 0
    while pos < len(data):
        start = pos
        payload = b""
        while True:
            magic, lrec = struct.unpack("<II", data[pos:pos + 8])
            assert magic == MAGIC
            cflag, length = lrec >> 29, lrec & ((1 << 29) - 1)
            payload += data[pos + 8:pos + 8 + length]
            pos += 8 + ((length + 3) // 4) * 4
            if cflag in (0, 3):
                break
            payload += MAGIC_BYTES
        out.append((start, payload))
    return out


def ir_unpack(payload):
    flag, label, rid, id2 = struct.unpack("<IfQQ", payload[:24])
    labels = struct.unpack(f"<{flag}f", payload[24:24 + 4 * flag]) if flag else ()
    return flag, label, labels, rid, payload[24 + 4 * flag:]


def test_split_record_layout_and_round_trip(tmp_path):
    # In the payload (24-byte IRHeader + body) the magic sits at aligned offsets 24, 32, 44
    # (-> a 4-part record) and once at the unaligned offset 37, which must NOT split.
    body = (MAGIC_BYTES + b"abcd" + MAGIC_BYTES + b"x" + MAGIC_BYTES + b"yyy" + MAGIC_BYTES
            + b"tail!")
    path = str(tmp_path / "t.rec")
    with RecordIOWriter(path) as w:
        w.write(b"plain", 3)
        w.write(body, 7)
    raw = open(path, "rb").read()
    # Second record starts after record 0: 8 + 24 + 5 -> padded to 40 bytes.
    flags = []
    pos = 40
    while pos < len(raw):
        magic, lrec = struct.unpack_from("<II", raw, pos)
        assert magic == MAGIC
        flags.append(lrec >> 29)
        length = lrec & ((1 << 29) - 1)
        pos += 8 + ((length + 3) // 4) * 4
        if flags[-1] in (0, 3):
            break
    payload = b"\0" * 24 + body
    aligned = [i for i in range(0, len(payload) - 3, 4) if payload[i:i + 4] == MAGIC_BYTES]
    assert aligned == [24, 32, 44]
    assert flags == [1, 2, 2, 3]
    parsed = reference_parse(path)
    assert [ir_unpack(p)[-1] for _, p in parsed] == [b"plain", body]
    with RecordIO(path) as r:
        assert r.read(1).image == body and r.read(1).label == 7
        assert r.read(0).image == b"plain" and r.read(0).label == 3
        assert [rec.image for rec in r.scan()] == [b"plain", body]


def test_idx_matches_file_and_random_access_equals_scan(tmp_path, rng):
    path = str(tmp_path / "train.rec")
    images = [rng.bytes(int(n)) for n in rng.integers(1, 300, size=40)]
    labels = rng.integers(0, 9, size=40)
    with RecordIOWriter(path) as w:
        for img, lab in zip(images, labels):
            w.write(img, int(lab))
    parsed = reference_parse(path)
    idx = [tuple(map(int, line.split("\t"))) for line in open(tmp_path / "train.idx")]
    assert [off for _, off in idx] == [off for off, _ in parsed]
    assert [k for k, _ in idx] == list(range(40))
    with RecordIO(path) as r:
        assert len(r) == 40 and r.header is None
        order = rng.permutation(40)
        for k in order:
            rec = r.read(int(k))
            assert rec.image == images[k] and rec.label == labels[k] and rec.labels == ()
        scanned = list(r.scan())
        assert [(s.key, s.image, s.label) for s in scanned] == [
            (r.read(k).key, r.read(k).image, r.read(k).label) for k in r.keys()]
    os.remove(tmp_path / "train.idx")  # sequential iteration works without the .idx
    with RecordIO(path) as r:
        assert [rec.image for rec in r] == images
        with pytest.raises(RecordIOError, match="needs the .idx"):
            r.read(0)


def test_insightface_header_records(tmp_path, rng):
    items = [(lab, rng.bytes(50)) for lab in [2, 0, 1, 0, 2, 2, 1]]
    n = write_insightface_dataset(str(tmp_path), items, image_size=112)
    assert n == 7
    assert open(tmp_path / "property").read().strip() == "3,112,112"
    parsed = reference_parse(str(tmp_path / "train.rec"))
    idx = {int(k): int(o) for k, o in (line.split("\t") for line in open(tmp_path / "train.idx"))}
    by_offset = dict(parsed)
    head = ir_unpack(by_offset[idx[0]])
    # Record 0: flag 2, [first identity key, end key], empty body (insightface's face2rec2).
    assert head[0] == 2 and head[2] == (8.0, 11.0) and head[-1] == b""
    ranges = [ir_unpack(by_offset[idx[k]])[2] for k in range(8, 11)]
    assert ranges == [(1.0, 3.0), (3.0, 5.0), (5.0, 8.0)]  # grouped: 0,0 | 1,1 | 2,2,2
    with RecordIO(str(tmp_path / "train.rec")) as r:
        assert r.header == (8, 11) and r.num_classes == 3
        assert r.keys().tolist() == list(range(1, 8)) and len(r) == 7
        assert r.labels().tolist() == [0, 0, 1, 1, 2, 2, 2]
        assert r.identity_ranges().tolist() == [[1, 3], [3, 5], [5, 8]]
        expected = sorted(items, key=lambda t: t[0])  # stable grouping
        assert [rec.image for rec in r] == [img for _, img in expected]
        assert len(r.record_keys()) == 11
    # Without the .idx, iteration still yields only the images (header records have no body).
    os.remove(tmp_path / "train.idx")
    with RecordIO(str(tmp_path / "train.rec")) as r:
        assert [rec.label for rec in r] == [0, 0, 1, 1, 2, 2, 2]


def _insightface(tmp_path, rng):
    items = [(lab, rng.bytes(50)) for lab in [2, 0, 1, 0, 2, 2, 1]]  # images 1..7, ids 8..10
    write_insightface_dataset(str(tmp_path), items, image_size=112)
    idx = {int(k): int(o) for k, o in (line.split("\t") for line in open(tmp_path / "train.idx"))}
    return str(tmp_path / "train.rec"), idx


def _poke_labels(path, offset, *values):  # the float labels after the 24-byte IRHeader
    with open(path, "r+b") as f:
        f.seek(offset + 8 + 24)
        f.write(struct.pack(f"<{len(values)}f", *values))


@pytest.mark.parametrize("values,message", [
    ((8.0, 71.0), r"train.idx: the header record says keys 0..70 .* but key 11 is missing"),
    ((8.0, 1e38), r"train.idx: the header record says keys .* but key 11 is missing"),
    ((-1.0, 11.0), r"header record 0 gives images 1..-2 and identities -1..10: impossible"),
    ((8.5, 11.0), r"header record 0 holds \(8.5, 11.0\), not two integer keys"),
    ((float("nan"), 11.0), r"header record 0 holds \(nan, 11.0\)"),
])
def test_a_damaged_header_record_is_named(tmp_path, rng, values, message):
    path, idx = _insightface(tmp_path, rng)
    _poke_labels(path, idx[0], *values)
    with pytest.raises(RecordIOError, match=message):
        RecordIO(path)


def test_a_header_rounded_by_float32_is_read_exactly(tmp_path, rng, monkeypatch):
    """Past 2^24 keys (WebFace42M) the header's float32 labels round to even / fourth keys;
    simulated here with a coarse rounding on a small set: the .idx and the records give the
    exact keys."""
    from tfmargin.data.recordio import reader

    path, idx = _insightface(tmp_path, rng)  # images 1..7, identity records 8..10
    _poke_labels(path, idx[0], 9.0, 11.0)    # what a coarse float would store for (8, 11)
    monkeypatch.setattr(reader, "FLOAT32_EXACT", 4)
    monkeypatch.setattr(reader, "_round32", lambda v: float(int(v) // 4 * 4))
    with RecordIO(path) as r:
        assert r.header == (8, 11) and len(r) == 7 and r.num_classes == 3


def test_header_and_property_must_agree(tmp_path, rng):
    path, _ = _insightface(tmp_path, rng)
    (tmp_path / "property").write_text("14,112,112\n")
    with pytest.raises(RecordIOError, match=r"header record counts 3 identities but property "
                                            r"says 14"):
        RecordIO(path)


def test_damaged_identity_records_and_index_are_named(tmp_path, rng):
    path, idx = _insightface(tmp_path, rng)
    _poke_labels(path, idx[9], -1.0, 41.0)
    with RecordIO(path) as r:
        with pytest.raises(RecordIOError, match=r"identity record 9 gives images \(-1.0, 41.0\)"):
            r.identity_ranges()
    # an .idx without record 0: the identity records must not pass for images
    lines = [line for line in open(tmp_path / "train.idx") if not line.startswith("0\t")]
    (tmp_path / "train.idx").write_text("".join(lines))
    with RecordIO(path) as r:
        with pytest.raises(RecordIOError, match=r"record 8 is a header / identity record"):
            [rec.image for rec in r]


def test_multi_float_labels(tmp_path):
    path = str(tmp_path / "m.rec")
    emb = np.linspace(-1, 1, 6).astype(np.float32)
    with RecordIOWriter(path) as w:
        w.write(b"img0", labels=[4.0, *emb])             # insightface: class first
    with RecordIO(path) as r:
        rec = r.read(0)
        assert rec.flag == 7 and rec.label == 4
        np.testing.assert_array_equal(np.float32(rec.labels[1:]), emb)
    path2 = str(tmp_path / "md.rec")
    with RecordIOWriter(path2, label_index=-1) as w:      # MarginDistillation: class last
        w.write(b"img1", labels=[*emb, 5.0])
    with RecordIO(path2, label_index=-1) as r:
        assert r.read(0).label == 5
    payload = reference_parse(path2)[0][1]
    flag, label, labels, _, body = ir_unpack(payload)
    assert flag == 7 and label == 0.0 and labels[-1] == 5.0 and body == b"img1"


def test_truncated_file_reports_offset(tmp_path):
    path = str(tmp_path / "t.rec")
    with RecordIOWriter(path) as w:
        w.write(b"a" * 100, 0)
        w.write(b"b" * 100, 1)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size - 30)
    second = reference_parse_offsets(tmp_path / "t.idx")[1]
    with RecordIO(path) as r:
        assert r.read(0).image == b"a" * 100
        with pytest.raises(RecordIOError, match=f"truncated record at byte offset {second}"):
            r.read(1)
        with pytest.raises(RecordIOError, match="truncated"):
            list(r.scan())


def test_a_damaged_length_is_checked_before_reading(tmp_path):
    path = str(tmp_path / "t.rec")
    with RecordIOWriter(path) as w:
        w.write(b"a" * 100, 0)
        w.write(b"b" * 100, 1)
    second = reference_parse_offsets(tmp_path / "t.idx")[1]
    with open(path, "r+b") as f:  # the second chunk now claims 500 MB
        f.seek(second + 4)
        f.write(struct.pack("<I", 500_000_000))
    with RecordIO(path) as r:
        asked = []
        pread = r._pread
        r._pread = lambda n, offset: asked.append(n) or pread(n, offset)
        with pytest.raises(RecordIOError, match=f"{path}: truncated record at byte offset "
                                                f"{second}: its chunk announces 500000000"):
            r.read(1)
        assert max(asked) <= 4096  # nothing near 500 MB was requested


@pytest.mark.parametrize("text", [b"0,112,112\n", b"-1,112,112\n", b"14,112\n", b"\xff\xfe14",
                                  b"14,112,0\n"])
def test_a_broken_property_file_is_named(tmp_path, text):
    from tfmargin.data.recordio.format import read_property

    (tmp_path / "property").write_bytes(text)
    with pytest.raises(RecordIOError, match=f"^{tmp_path / 'property'}: "):
        read_property(str(tmp_path))
    (tmp_path / "property").write_bytes(b"14,112,112\n")
    assert read_property(str(tmp_path)) == (14, 112, 112)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), 2.5, -3.0])
def test_a_label_that_is_not_a_class_is_named(tmp_path, bad):
    path = str(tmp_path / "t.rec")
    with RecordIOWriter(path) as w:
        w.write(b"a" * 10, 0)
        w.write(b"b" * 10, 1)
    second = reference_parse_offsets(tmp_path / "t.idx")[1]
    with open(path, "r+b") as f:  # the IRHeader's float label sits after flag (4 bytes)
        f.seek(second + 8 + 4)
        f.write(struct.pack("<f", bad))
    with RecordIO(path) as r:
        for read in (lambda: r.read(1), r.labels, lambda: r.read_packed([0, 1])):
            with pytest.raises(LabelError, match=f"^{path}: record 1 has label "):
                read()


@pytest.mark.parametrize("text,message", [
    ("0\t0\n1\t99999999999999999999999\n", r"t.idx:2: expected 'key<TAB>offset'"),
    ("0\t0\n-1\t4\n", r"t.idx:2: expected 'key<TAB>offset'"),
    ("", r"t.idx: empty index"),
    ("0\t0\n0\t0\n", r"t.idx: a key is listed twice"),
])
def test_a_broken_idx_is_named(tmp_path, text, message):
    path = str(tmp_path / "t.rec")
    with RecordIOWriter(path) as w:
        w.write(b"a" * 10, 0)
    (tmp_path / "t.idx").write_text(text)
    with pytest.raises(RecordIOError, match=message):
        RecordIO(path)


def reference_parse_offsets(idx_path):
    return [int(line.split("\t")[1]) for line in open(idx_path)]


def test_bad_magic_and_bad_idx(tmp_path):
    path = str(tmp_path / "t.rec")
    with RecordIOWriter(path) as w:
        w.write(b"a" * 10, 0)
        w.write(b"b" * 10, 1)
    with open(tmp_path / "t.idx", "w") as f:
        f.write("0\t0\n1\t4\n")
    with RecordIO(path) as r:
        with pytest.raises(RecordIOError, match="bad magic .* at byte offset 4"):
            r.read(1)
    with open(tmp_path / "t.idx", "w") as f:
        f.write("0\t0\n1\t99999\n")
    with pytest.raises(RecordIOError, match="record 1 points at byte offset 99999"):
        RecordIO(path)


def test_label_out_of_range_names_record(tmp_path):
    path = str(tmp_path / "train.rec")
    with RecordIOWriter(path) as w:
        w.write(b"x", 0)
        w.write(b"y", 5)
    with open(tmp_path / "property", "w") as f:
        f.write("3,112,112\n")
    with RecordIO(path) as r:
        assert r.read(0).label == 0
        with pytest.raises(LabelError, match="record 1 has label 5"):
            r.read(1)
    with pytest.raises(LabelError, match="outside 0..1"):
        with RecordIOWriter(str(tmp_path / "w.rec"), num_classes=2) as w:
            w.write(b"z", 2)


def test_failed_write_keeps_existing_files(tmp_path):
    path = str(tmp_path / "train.rec")
    with RecordIOWriter(path, header=True) as w:
        w.write(b"old", 0)
    before = open(path, "rb").read(), open(tmp_path / "train.idx").read()
    with pytest.raises(RuntimeError):
        with RecordIOWriter(path, header=True) as w:
            w.write(b"new", 0)
            raise RuntimeError("boom")
    assert (open(path, "rb").read(), open(tmp_path / "train.idx").read()) == before
    assert sorted(os.listdir(tmp_path)) == ["property", "train.idx", "train.rec"]
    # Identities not consecutive with header=True: refused at close, old files intact.
    with pytest.raises(ValueError, match="identity 0 are not consecutive"):
        with RecordIOWriter(path, header=True) as w:
            w.write(b"a", 0)
            w.write(b"b", 1)
            w.write(b"c", 0)
    assert open(path, "rb").read() == before[0]


def test_read_packed_matches_reference_parser(tmp_path, rng):
    # Plain, split (magic inside), empty-bodied and multi-float records, plus the header and
    # identity records of an insightface dataset: every key against the byte-level reference.
    path = str(tmp_path / "train.rec")
    split_body = b"ab" + b"\0\0" + MAGIC_BYTES + rng.bytes(33)  # magic at aligned offset 28
    images = [rng.bytes(int(n)) for n in rng.integers(1, 200, size=12)] + [split_body]
    with RecordIOWriter(path, header=True) as w:
        for i, img in enumerate(images):
            w.write(img, i // 4)
    assert w.split_records == 1
    with RecordIOWriter(str(tmp_path / "m.rec")) as w:  # class = labels[0], 5 floats each
        for i in range(5):
            w.write(rng.bytes(20 + i), labels=[float(i % 3), *rng.normal(size=4)])
    by_offset = dict(reference_parse(path))
    offsets = {int(k): int(o) for k, o in (ln.split("\t") for ln in open(tmp_path / "train.idx"))}
    with RecordIO(path) as r:
        keys = np.concatenate([rng.permutation(r.keys()), [0, r.header[0]]])  # + meta records
        data, starts, lengths, labels = r.read_packed(keys)
        assert starts.dtype == lengths.dtype == np.int64 and labels.dtype == np.int32
        for key, s, n, label in zip(keys, starts, lengths, labels):
            flag, scalar, floats, _, body = ir_unpack(by_offset[offsets[int(key)]])
            meta = flag == 2 and not body
            assert data[s:s + n] == body
            assert label == (0 if meta else int(floats[0] if flag else scalar))
        assert r.read_many(keys[:3]) == [(r.read(int(k)).image, r.read(int(k)).label)
                                         for k in keys[:3]]
        empty = r.read_packed([])
        assert empty[0] == b"" and len(empty[1]) == len(empty[3]) == 0
        with pytest.raises(KeyError, match="no record with key 999"):
            r.read_packed([1, 999])
    with RecordIO(str(tmp_path / "m.rec")) as r:
        data, starts, lengths, labels = r.read_packed([4, 0, 2])
        assert labels.tolist() == [1, 0, 2]
        assert [data[s:s + n] for s, n in zip(starts, lengths)] == [r.read(k).image
                                                                    for k in (4, 0, 2)]


def test_read_packed_errors_name_the_record(tmp_path):
    path = str(tmp_path / "t.rec")
    with RecordIOWriter(path) as w:
        w.write(b"a" * 100, 0)
        w.write(b"b" * 100, 1)
        w.write(b"c" * 100, 7)
    with open(tmp_path / "property", "w") as f:
        f.write("3,112,112\n")
    with RecordIO(path) as r:
        assert r.read_packed([1, 0])[3].tolist() == [1, 0]
        with pytest.raises(LabelError, match="record 2 has label 7, outside 0..2"):
            r.read_packed([0, 2])
    offsets = reference_parse_offsets(tmp_path / "t.idx")
    with open(path, "r+b") as f:
        f.truncate(offsets[2] - 30)
    with open(tmp_path / "t.idx", "w") as f:
        f.write(f"0\t{offsets[0]}\n1\t{offsets[1]}\n")
    with RecordIO(path) as r:
        with pytest.raises(RecordIOError, match=f"truncated record at byte offset {offsets[1]}"):
            r.read_packed([0, 1])


def test_a_truncated_idx_never_reads_the_rest_of_the_file(tmp_path, monkeypatch):
    """A .idx cut short makes its last listed record span to the end of the .rec (gigabytes on
    MS1M): the first read is capped, and the record is still read whole and right."""
    from tfmargin.data.recordio import reader as reader_module

    path = str(tmp_path / "t.rec")
    with RecordIOWriter(path) as w:
        for i in range(6):
            w.write(bytes([i]) * 3000, i)
    lines = open(tmp_path / "t.idx").read().splitlines()
    (tmp_path / "t.idx").write_text("\n".join(lines[:2]) + "\n")  # keys 0 and 1 only
    monkeypatch.setattr(reader_module, "FIRST_READ", 1024)  # below one record: split reads
    with RecordIO(path) as r:
        asked = []
        pread = r._pread
        r._pread = lambda n, offset: asked.append(n) or pread(n, offset)
        assert r.read(1).image == b"\x01" * 3000
        data, starts, lengths, labels = r.read_packed([0, 1])
        assert [data[s:s + n] for s, n in zip(starts, lengths)] == [b"\x00" * 3000,
                                                                     b"\x01" * 3000]
        assert labels.tolist() == [0, 1]
        # the span of key 1 runs to the end of the file (4 records more); no read asked for it
        assert max(asked) < 3000 + 64


def test_a_refused_file_leaves_no_open_handle(tmp_path):
    path = str(tmp_path / "t.rec")
    with RecordIOWriter(path) as w:
        w.write(b"a", 0)
    (tmp_path / "t.idx").write_text("0\t99999\n")  # past the end
    fds = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        with pytest.raises(RecordIOError, match="past the end"):
            RecordIO(path)
    assert len(os.listdir("/proc/self/fd")) == fds


def test_a_label_index_outside_the_labels_is_named(tmp_path):
    """label_index 5 of a record with 3 floats: an error naming the record, the same from
    read(), labels() and read_packed() (which once wrapped the index around silently)."""
    path = str(tmp_path / "m.rec")
    with RecordIOWriter(path) as w:
        w.write(b"img0", labels=[1.0, 2.0, 0.0])
    with RecordIO(path, label_index=5) as r:
        for call in (lambda: r.read(0), r.labels, lambda: r.read_packed([0])):
            with pytest.raises(LabelError, match=rf"^{path}: record 0 has 3 label floats; "
                                                 "label_index 5"):
                call()
    with RecordIO(path, label_index=-3) as r:
        assert r.read(0).label == 1 and r.labels().tolist() == [1]
