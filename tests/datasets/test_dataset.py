"""write_dataset: real formats, read back by the project's independent readers; determinism;
small sizes; the split and the verification pair layout."""

import hashlib
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from tfmargin.data.images import decode_image
from tfmargin.data.recordio import RecordIO, read_property
from tfmargin.datasets.synthetic import (SyntheticDatasetWarning, render_identity, split_identities,
                                     verification_pairs, write_dataset)
from tfmargin.data.verification_bin import load_verification_encoded

FILES = ("train.rec", "train.idx", "property", "val.bin", "test.bin", "identification.npz")


def _digest(directory):
    h = hashlib.sha256()
    for name in FILES:
        with open(os.path.join(directory, name), "rb") as f:
            h.update(name.encode() + f.read())
    return h.hexdigest()


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """40 identities x 4 images: 28 train, 4 val, 4 test, 4 identification."""
    out = tmp_path_factory.mktemp("synthetic")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntheticDatasetWarning)
        summary = write_dataset(out, 40, 4, seed=11, workers=1)
    return out, summary


def test_same_seed_same_bytes_any_worker_count_and_other_seed_differs(small, tmp_path):
    out, _ = small
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntheticDatasetWarning)
        write_dataset(tmp_path / "again", 40, 4, seed=11, workers=2)
        write_dataset(tmp_path / "other", 40, 4, seed=12, workers=1)
    assert _digest(out) == _digest(tmp_path / "again")
    assert _digest(out) != _digest(tmp_path / "other")


def test_train_rec_is_an_insightface_dataset_of_the_training_identities(small):
    out, summary = small
    assert read_property(out) == (28, 112, 112)
    with RecordIO(os.path.join(out, "train.rec")) as reader:
        assert reader.num_classes == 28 and len(reader) == 28 * 4
        ranges = reader.identity_ranges()
        np.testing.assert_array_equal(ranges[:, 1] - ranges[:, 0], 4)
        labels = reader.labels()
        np.testing.assert_array_equal(labels, np.repeat(np.arange(28), 4))
        # record bytes are exactly the generator's images of that identity, in order
        keys = reader.keys()
        for identity in (0, 13, 27):
            expected = render_identity(11, identity, 4)
            got = [reader.read(k).image for k in keys[identity * 4:(identity + 1) * 4]]
            assert got == expected
        image = decode_image(reader.read(keys[5]).image)
        assert image.shape == (112, 112, 3)
    assert summary["train"] == {"path": "train.rec", "identities": 28, "images": 112}
    with open(os.path.join(out, "synthetic.json")) as f:
        meta = json.load(f)
    assert meta["identities"] == {"train": [0, 28], "val": [28, 32], "test": [32, 36],
                                  "identification": [36, 40]}


def _identity_of(encoded, lookup):
    return lookup[encoded]


def test_verification_bins_hold_held_out_pairs_in_lfw_fold_layout(small):
    out, summary = small
    lookup = {}
    for identity in range(28, 40):
        for j, jpeg in enumerate(render_identity(11, identity, 4)):
            lookup[jpeg] = (identity, j)
    for name, ids in (("val", range(28, 32)), ("test", range(32, 36))):
        encoded, issame = load_verification_encoded(os.path.join(out, f"{name}.bin"))
        per_fold = summary[name]["pairs_per_fold"]
        assert summary[name]["folds"] == 10 and len(issame) == 20 * per_fold
        # 4 identities x C(4,2) = 24 same pairs over 10 folds -> 2 per fold
        assert per_fold == 2
        np.testing.assert_array_equal(issame, np.tile([True] * per_fold + [False] * per_fold, 10))
        seen = set()
        for i, same in enumerate(issame):
            (ia, ja), (ib, jb) = lookup[encoded[2 * i]], lookup[encoded[2 * i + 1]]
            assert ia in ids and ib in ids
            assert (ia == ib) == bool(same)
            assert (ia, ja) != (ib, jb)
            pair = frozenset([(ia, ja), (ib, jb)])
            assert pair not in seen  # drawn without replacement
            seen.add(pair)


def test_identification_set_reads_with_the_evaluator(small):
    from tfmargin.evaluate.identification_set import load_identification_set

    out, summary = small
    data = load_identification_set(os.path.join(out, "identification.npz"))
    np.testing.assert_array_equal(data["gallery_labels"], [36, 37])
    np.testing.assert_array_equal(data["probe_labels"], np.repeat([36, 37], 3))
    with np.load(os.path.join(out, "identification.npz")) as z:
        np.testing.assert_array_equal(z["distractor_labels"], np.repeat([38, 39], 4))
    assert data["gallery"].shape == (2, 112, 112, 3) and data["gallery"].dtype == np.uint8
    assert data["distractors"].shape == (8, 112, 112, 3)
    first = [decode_image(e) for e in render_identity(11, 36, 4)]
    np.testing.assert_array_equal(data["gallery"][0], first[0])
    np.testing.assert_array_equal(data["probe"][:3], np.stack(first[1:]))
    assert summary["identification"]["distractors"] == 8


def test_split_identities():
    def counts(n):
        return {k: len(r) for k, r in split_identities(n).items()}

    assert counts(600) == {"train": 420, "val": 60, "test": 60, "identification": 60}
    assert counts(20) == {"train": 14, "val": 2, "test": 2, "identification": 2}
    assert counts(10) == {"train": 5, "val": 2, "test": 2, "identification": 1}
    assert counts(5) == {"train": 3, "val": 1, "test": 1, "identification": 0}
    assert counts(1) == {"train": 1, "val": 0, "test": 0, "identification": 0}
    ranges = split_identities(100, {"train": 0.5, "val": 0.25, "test": 0.25})
    assert [len(r) for r in ranges.values()] == [50, 25, 25, 0]
    covered = np.concatenate([list(r) for r in split_identities(37).values()])
    np.testing.assert_array_equal(covered, np.arange(37))
    with pytest.raises(ValueError, match="identities"):
        split_identities(0)
    with pytest.raises(ValueError, match="split"):
        split_identities(10, {"train": 1.0, "bogus": 0.5})


def test_verification_pairs_full_size_folds_are_identity_disjoint():
    pairs, issame, per_fold = verification_pairs(range(100, 160), 20, np.random.default_rng(0))
    assert per_fold == 300 and pairs.shape == (6000, 2, 2)
    for f in range(10):
        fold = pairs[600 * f:600 * (f + 1)]
        same = fold[:300]
        assert np.all(same[:, 0, 0] == same[:, 1, 0]) and np.all(same[:, 0, 1] != same[:, 1, 1])
        assert np.all(fold[300:, 0, 0] != fold[300:, 1, 0])
        ids = set(fold[:, :, 0].ravel())
        for g in range(f + 1, 10):
            assert not ids & set(pairs[600 * g:600 * (g + 1), :, 0].ravel())
    assert len({tuple(p.ravel()) for p in pairs}) == 6000


def test_tiny_sets_shrink_with_warnings_never_errors(tmp_path):
    with pytest.warns(SyntheticDatasetWarning) as record:
        summary = write_dataset(tmp_path / "tiny", 20, 5, seed=0, workers=1)
    messages = " ".join(str(w.message) for w in record)
    assert "val.bin" in messages and "test.bin" in messages
    assert summary["val"]["pairs"] == 40 and summary["val"]["pairs_per_fold"] == 2
    with pytest.warns(SyntheticDatasetWarning) as record:
        summary = write_dataset(tmp_path / "single", 6, 1, seed=0, workers=1)
    messages = " ".join(str(w.message) for w in record)
    assert "not written" in messages and "identification" in messages
    assert summary["val"] is None and summary["test"] is None
    assert not os.path.exists(tmp_path / "single" / "val.bin")
    assert os.path.exists(tmp_path / "single" / "train.rec")
    with pytest.raises(ValueError, match="images_per_identity"):
        write_dataset(tmp_path / "bad", 6, 0)


@pytest.mark.slow
def test_prepare_cli_writes_the_dataset(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, "-m", "tfmargin.cli.prepare", "synthetic", f"--output={tmp_path / 'd'}",
         "--identities=10", "--images_per_identity=2", "--seed=3", "--difficulty=easy",
         "--workers=1", "--noprogress"],
        capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "prepare synthetic:" in proc.stdout
    assert read_property(tmp_path / "d") == (5, 112, 112)  # 10 ids: 5 train, 2 + 2 + 1 held out
    with RecordIO(os.path.join(tmp_path / "d", "train.rec")) as reader:
        assert reader.read(reader.keys()[0]).image == render_identity(3, 0, 2, "easy")[0]
