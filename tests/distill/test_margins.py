"""mean_teacher_margin against a float64 restatement of the paper's formula, over records read
by a different path (tf.train.Example parsing, shard by shard)."""

import numpy as np
import pytest

from tests.train.fixtures import signal  # noqa: F401
from tfmargin.distill import mean_teacher_margin


def _records(sig):
    import tensorflow as tf

    labels, teacher = [], []
    for path in sorted(sig.files):
        for raw in tf.data.TFRecordDataset(path):
            f = tf.train.Example.FromString(raw.numpy()).features.feature
            labels.append(f["label"].int64_list.value[0])
            teacher.append(list(f["teacher"].float_list.value))
    return np.array(labels), np.array(teacher, np.float64)


def _reference(labels, teacher, centers, m_max, m_min, batch, clip=False):
    margins = []
    for start in range(0, len(labels), batch):
        y, t = labels[start:start + batch], teacher[start:start + batch]
        cos = np.array([t[i] @ centers[:, y[i]] / np.linalg.norm(t[i]) for i in range(len(y))])
        m = (m_max - m_min) / max(cos.max(), 1e-6) * cos + m_min
        margins += list(np.clip(m, m_min, m_max) if clip else m)
    return float(np.mean(margins))


@pytest.mark.parametrize("batch,clip", [(7, False), (32, True), (10_000, False)])
def test_mean_margin_matches_reference(signal, batch, clip):  # noqa: F811
    labels, teacher = _records(signal)
    centers = signal.centers.astype(np.float64)
    got = mean_teacher_margin(signal, 0.5, 0.2, clip=clip, batch_size=batch)
    # (the untrained teacher gives batches whose largest cosine is near 0: large margins)
    assert got == pytest.approx(_reference(labels, teacher, centers, 0.5, 0.2, batch, clip),
                                rel=1e-12)
    if batch >= len(labels):  # one batch: (m_max - m_min) * mean(cos) / max(cos) + m_min
        cos = np.einsum("nd,dn->n", teacher / np.linalg.norm(teacher, axis=1, keepdims=True),
                        centers[:, labels])
        assert got == pytest.approx(0.3 * cos.mean() / cos.max() + 0.2, rel=1e-12)
