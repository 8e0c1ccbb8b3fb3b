"""Regressions for the hostile files a review of the readers found (each case was a raw
exception, a silently wrong value or a decompression bomb that got through)."""

import io
import json
import os
import pickle
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from tfmargin.data.image_header import declared_size
from tfmargin.data.images import CorruptImageError
from tfmargin.data.recordio import RecordIO, RecordIOError, write_insightface_dataset
from tfmargin.data.recordio.format import encode_chunks, pack_payload
from tfmargin.data.tfrecord import TFRecordError


def png_bomb(width, height):
    """A valid PNG of zeros: a few hundred KB that decodes to width x height x 3 bytes."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    z = zlib.compressobj(9)
    row = b"\0" * (1 + 3 * width)
    body = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                               0, 0, 0))
            + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def test_a_jpeg_frame_behind_stray_bytes_or_a_long_segment_is_still_found():
    buf = io.BytesIO()
    Image.fromarray(np.zeros((300, 200, 3), np.uint8)).save(buf, "JPEG")
    jpeg = buf.getvalue()
    sof = jpeg.index(b"\xff\xc0")
    assert declared_size(jpeg[:sof] + b"\x00" + jpeg[sof:]) == (300, 200)  # libjpeg skips it
    padded = b"\xff\xd8\xff\xe1\xff\xff" + b"\x00" * 65533 + jpeg[2:]  # a 64 KB APP1 first
    assert declared_size(padded) == (300, 200)


def test_a_valid_png_bomb_never_reaches_the_decoder_in_the_stream(tmp_path):
    from tfmargin.data import train_dataset
    from tfmargin.data.images import encode_png
    from tfmargin.data.pipeline import DataPipelineError, named_errors

    bomb = png_bomb(8200, 8200)  # 67.2 Mpx, over MAX_PIXELS; ~200 MB once decoded
    good = encode_png(np.zeros((112, 112, 3), np.uint8))
    items = [(i % 4, bomb if i in (2, 9) else good) for i in range(16)]
    write_insightface_dataset(str(tmp_path), items)
    with RecordIO(str(tmp_path / "train.rec")) as r:
        bombs = [int(r.keys()[i]) for i, (_, data) in enumerate(
            sorted(items, key=lambda item: item[0])) if data is bomb]
    ds = train_dataset(str(tmp_path), 8, seed=0, shuffle=False, repeat=False,
                       drop_remainder=False)
    delivered = sum(int(label.shape[0]) for _, label in ds)
    assert delivered == 14  # the two bombs dropped as corrupt images
    rec = tmp_path / "train.rec"
    with pytest.raises(DataPipelineError, match=rf"^{rec}: record ({bombs[0]}|{bombs[1]}): "
                                                "corrupt image"):
        with named_errors(str(tmp_path)):
            for _ in train_dataset(str(tmp_path), 8, strict=True, seed=0):
                pass


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(num_classes=10 ** 20), "num_classes 100000000000000000000 is over"),
    (lambda m: m.update(teacher_dim=2 ** 40), "teacher_dim 1099511627776 is over"),
    (lambda m: m.update(counts=[2 ** 70] + m["counts"][1:]), "each count 1180591620717411303424"),
    (lambda m: m.update(shards=[m["shards"][0]] * 2), "a shard is listed twice"),
    (lambda m: m.pop("counts"), "num_examples without per-shard 'counts'"),
])
def test_dataset_json_values_are_bounded(synthetic, tmp_path, edit, message):
    from tfmargin.data import train_dataset
    from tfmargin.data.convert import convert_to_tfrecord

    shards = tmp_path / "shards"
    convert_to_tfrecord(str(synthetic / "train.rec"), str(shards), num_shards=2, seed=0,
                        progress=False)
    meta = json.loads((shards / "dataset.json").read_text())
    edit(meta)
    (shards / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(TFRecordError, match=rf"^{shards / 'dataset.json'}: {message}"):
        train_dataset(str(shards), 8, seed=0)


@pytest.mark.parametrize("text", ["[" * 100000 + "]" * 100000, '{"shards": ' + "9" * 5000 + "}"])
def test_dataset_json_that_breaks_the_json_parser(tmp_path, text):
    from tfmargin.data.tfrecord import read_metadata

    (tmp_path / "dataset.json").write_text(text)
    with pytest.raises(TFRecordError, match=rf"^{tmp_path / 'dataset.json'}: not valid JSON"):
        read_metadata(str(tmp_path))


def test_a_shard_whose_first_record_is_no_example(tmp_path):
    import tensorflow as tf

    from tfmargin.data import tfrecord_dataset

    with tf.io.TFRecordWriter(str(tmp_path / "a.tfrecord")) as w:
        w.write(b"\xff\xff\xff garbage")
    with pytest.raises(TFRecordError, match=rf"^{tmp_path / 'a.tfrecord'}: record 0 is not a "
                                            "tf.train.Example"):
        tfrecord_dataset(str(tmp_path))


def _write(directory, payloads, prop=None):
    os.makedirs(directory, exist_ok=True)
    offset, lines = 0, []
    with open(os.path.join(directory, "train.rec"), "wb") as rec:
        for key, payload in payloads:
            chunk = encode_chunks(payload)
            rec.write(chunk)
            lines.append(f"{key}\t{offset}\n")
            offset += len(chunk)
    with open(os.path.join(directory, "train.idx"), "w") as idx:
        idx.writelines(lines)
    if prop:
        with open(os.path.join(directory, "property"), "w") as f:
            f.write(prop)
    return os.path.join(directory, "train.rec")


def test_a_header_past_float32_with_few_keys_is_named(tmp_path):
    image = b"\x89PNG" + b"x" * 40
    rec = _write(tmp_path, [(0, pack_payload(b"", labels=[5, 2 ** 25]))]
                 + [(k, pack_payload(image, label=0, id=k)) for k in range(1, 8)])
    with pytest.raises(RecordIOError, match=r"the header record says keys 0\.\.33554431"):
        RecordIO(rec)


def test_labels_refuse_a_label_float_outside_the_record(tmp_path):
    """flag=1 with one byte of payload: labels() once returned class 0 where read() refuses."""
    image = b"\x89PNG" + b"x" * 40
    rec = _write(tmp_path, [(0, pack_payload(image, label=0)),
                            (1, struct.pack("<IfQQ", 1, 0.0, 1, 0) + b"\0"),
                            (2, pack_payload(image, label=0))], prop="1,112,112")
    with RecordIO(rec) as r:
        for call in (r.labels, lambda: r.read(1), lambda: r.read_packed([1])):
            with pytest.raises(RecordIOError, match=rf"^{rec}: record 1: IRHeader announces 1"):
                call()


def test_overlapping_identity_records_are_named(tmp_path):
    image = b"\x89PNG" + b"x" * 40
    rec = _write(tmp_path, [(0, pack_payload(b"", labels=[5, 7]))]
                 + [(k, pack_payload(image, label=k // 3, id=k)) for k in range(1, 5)]
                 + [(5, pack_payload(b"", labels=[1, 4])), (6, pack_payload(b"", labels=[3, 5]))],
                 prop="2,112,112")
    with RecordIO(rec) as r:
        with pytest.raises(RecordIOError, match=r"identity record 6 gives images \(3, 5\), "
                                                r"overlapping the range \(1, 4\) of record 5"):
            r.identity_ranges()


def test_an_unpickler_refusal_names_the_bin(tmp_path):
    from tfmargin.data.verification_bin import UnsafePickleError, load_verification_bin

    class Utf8Bytes:
        def __reduce__(self):
            import _codecs
            return _codecs.encode, ("\xe9", "utf-8")

    path = tmp_path / "g.bin"
    path.write_bytes(pickle.dumps(([Utf8Bytes(), b"x"], [True]), protocol=2))
    with pytest.raises(UnsafePickleError, match=rf"^{path}: _codecs.encode with encoding"):
        load_verification_bin(path)


def test_a_valid_bomb_in_a_bin_is_refused_before_decoding(tmp_path):
    from tfmargin.data.verification_bin import load_verification_bin

    path = tmp_path / "bomb.bin"
    good = png_bomb(112, 112)
    path.write_bytes(pickle.dumps(([good, png_bomb(8200, 8200)], [True]), protocol=4))
    with pytest.raises(CorruptImageError, match=rf"^{path}: image 1: its header declares "
                                                "8200x8200 pixels"):
        load_verification_bin(path)
