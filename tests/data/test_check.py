"""check_dataset / `prepare check`: a dataset read whole before training; each damaged image
named by file and record, structure errors raised, counts equal to what the readers report."""

import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

from tfmargin.data.check import check_dataset
from tfmargin.data.images import CorruptImageError
from tfmargin.data.recordio import RecordIO, RecordIOError, write_insightface_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _bomb(width=40_000, height=40_000):
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr
            + struct.pack(">I", zlib.crc32(ihdr)) + b"\x00" * 32)


@pytest.fixture(scope="module")
def damaged(synthetic, tmp_path_factory):
    """The synthetic training set rewritten with image 5 unreadable and image 9 a bomb."""
    root = tmp_path_factory.mktemp("damaged")
    with RecordIO(str(synthetic / "train.rec")) as r:
        items = [(rec.label, rec.image) for rec in r]
    items[5] = (items[5][0], b"\x00" * 600)
    items[9] = (items[9][0], _bomb())
    write_insightface_dataset(str(root), items)
    with RecordIO(str(root / "train.rec")) as r:
        keys = r.keys()
    return root, int(keys[5]), int(keys[9]), len(items)


def test_a_sound_dataset_passes_with_the_readers_counts(synthetic):
    summary = check_dataset(synthetic, progress=False)
    with RecordIO(str(synthetic / "train.rec")) as r:
        assert summary["images"] == len(r) and summary["identities"] == r.num_classes
        assert summary["identity_records"] == r.num_classes
    assert summary["skipped_corrupt"] == 0 and "other_size" not in summary
    bin_summary = check_dataset(synthetic / "test.bin")
    from tfmargin.data.verification_bin import load_verification_bin
    images, issame = load_verification_bin(synthetic / "test.bin")
    assert bin_summary["pairs"] == len(issame) and bin_summary["same"] == int(np.sum(issame))


def test_damaged_images_are_named(damaged):
    root, bad, bomb, n = damaged
    summary = check_dataset(root, progress=False)
    assert summary["images"] == n and summary["skipped_corrupt"] == 2
    rec = str(root / "train.rec")
    assert summary.skipped[0].startswith(f"{rec}: record {bad}: corrupt image")
    assert summary.skipped[1].startswith(f"{rec}: record {bomb}: corrupt image (its header "
                                         "declares 40000x40000 pixels")
    with pytest.raises(CorruptImageError, match=rf"^{rec}: record {bad}: corrupt image"):
        check_dataset(root, strict=True, progress=False)


def test_shards_are_checked_record_by_record(damaged, tmp_path):
    import tensorflow as tf

    from tfmargin.data.convert import convert_to_tfrecord
    from tfmargin.data.tfrecord import feature_spec, tfrecord_files

    root, bad, bomb, n = damaged
    convert_to_tfrecord(str(root / "train.rec"), str(tmp_path / "shards"), num_shards=2,
                        seed=1, verify=False, progress=False)
    summary = check_dataset(tmp_path / "shards", progress=False)
    assert summary["images"] == n and summary["shards"] == 2 and summary["skipped_corrupt"] == 2
    where = {}  # record key -> (shard, position), read back with tf.data alone
    for path in tfrecord_files(str(tmp_path / "shards"))[0]:
        for i, raw in enumerate(tf.data.TFRecordDataset(path)):
            key = tf.io.parse_single_example(raw, feature_spec())["key"].numpy().decode()
            where[key] = (path, i)
    expected = sorted(f"{where[str(k)][0]}: record {where[str(k)][1]}: corrupt image"
                      for k in (bad, bomb))
    assert sorted(s.split(" (")[0] for s in summary.skipped) == expected


def test_structural_damage_raises(damaged, tmp_path):
    import shutil

    root = damaged[0]
    for name in ("train.rec", "train.idx", "property"):
        shutil.copy(root / name, tmp_path / name)
    (tmp_path / "property").write_text("3,112,112\n")
    with pytest.raises(RecordIOError, match="property says 3"):
        check_dataset(tmp_path, progress=False)


def test_the_cli_exits_1_and_names_the_record(damaged, synthetic):
    root, bad, _, _ = damaged
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-m", "tfmargin.cli.prepare", "check",
                           f"--input={root}", "--noprogress"], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=240)
    assert proc.returncode == 1, proc.stderr
    assert f"prepare check: skipped {root / 'train.rec'}: record {bad}: corrupt image" \
        in proc.stderr
    assert "skipped_corrupt=2" in proc.stdout
