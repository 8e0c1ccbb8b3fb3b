"""teacher_by_position: the signal's embeddings put back in the dataset's order, checked
against the shards read by another path (tf.train.Example parsing) and the .rec's own keys."""

import os

import numpy as np
import pytest

from tests.train import tiny
from tfmargin.data.sources import IndexedSource
from tfmargin.distill import extract_teacher_signal, teacher_by_position


@pytest.fixture(scope="module")
def shuffled(synthetic, tmp_path_factory):
    import keras

    from tfmargin.train import TrainConfig, build_teacher

    tiny.register()
    keras.utils.set_random_seed(5)
    built = build_teacher(TrainConfig(role="teacher", backbone=tiny.NAME, embedding_size=16,
                                      data=str(synthetic)), num_classes=14)
    root = tmp_path_factory.mktemp("aligned")
    built.model.save(root / "teacher.keras")
    return extract_teacher_signal(str(root / "teacher.keras"), str(synthetic), root / "sig",
                                  shuffle=True, seed=4, log=None, progress=False)


def _by_key(sig):
    import tensorflow as tf

    out = {}
    for path in sig.files:
        for raw in tf.data.TFRecordDataset(path):
            f = tf.train.Example.FromString(raw.numpy()).features.feature
            out[f["key"].bytes_list.value[0].decode()] = np.array(f["teacher"].float_list.value)
    return out


def test_rows_follow_the_dataset_order(synthetic, shuffled):
    src = IndexedSource(str(synthetic))
    got = teacher_by_position(shuffled, str(synthetic))
    by_key = _by_key(shuffled)
    assert got.shape == (len(src), 16)
    for i in range(len(src)):
        np.testing.assert_array_equal(got[i], by_key[src.key(i)].astype(np.float32))
    cached = [f for f in os.listdir(shuffled.directory) if f.startswith("teacher_by_position")]
    assert len(cached) == 1 and isinstance(got, np.memmap)
    again = teacher_by_position(shuffled, str(synthetic))  # read from the cache
    np.testing.assert_array_equal(again, got)


def test_without_cache_it_is_aligned_in_memory(synthetic, shuffled):
    cached = teacher_by_position(shuffled, str(synthetic))
    before = sorted(os.listdir(shuffled.directory))
    got = teacher_by_position(shuffled, str(synthetic), cache=False)
    assert not isinstance(got, np.memmap) and sorted(os.listdir(shuffled.directory)) == before
    np.testing.assert_array_equal(got, cached)


def test_a_record_missing_from_the_signal_is_named(synthetic, shuffled, tmp_path):
    from tfmargin.distill import TeacherSignalError
    from tfmargin.distill.aligned import _build

    class Fewer:  # the dataset as the signal saw it, plus one record it never embedded
        def __init__(self):
            self.src = IndexedSource(str(synthetic))
            self.path = self.src.path

        def __len__(self):
            return len(self.src) + 1

        def key(self, i):
            return self.src.key(i) if i < len(self.src) else "99999"

    with pytest.raises(TeacherSignalError, match=r"train.rec: record 99999 has no teacher "):
        _build(shuffled, Fewer(), np.zeros((len(Fewer()), 16), np.float32))
