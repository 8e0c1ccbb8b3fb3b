"""P x K identity batches: the tf.data sampler and the numpy feed."""

import numpy as np
import pytest

from tfmargin.data.feed import ArrayFeed


def _check_pk(labels, p, k):
    groups = labels.reshape(p, k)
    assert (groups == groups[:, :1]).all()  # each run of K shares one identity


def test_identity_groups_is_a_pk_order():
    from tfmargin.data.sampling import groups_per_pass, identity_groups

    labels = np.repeat(np.arange(5), [7, 3, 4, 1, 9])  # remainders: 3, 3, 0, 1, 1 (K = 4)
    positions = np.arange(100, 124)
    order = identity_groups(positions, labels, 4, [3, 1]).numpy()
    assert len(order) == groups_per_pass(labels, 4) == 4 + 0 + 4 + 0 + 8
    assert len(set(order)) == len(order) and set(order) <= set(positions)  # no repeats
    _check_pk(labels[order - 100], len(order) // 4, 4)
    again = identity_groups(positions, labels, 4, [3, 1]).numpy()
    other = identity_groups(positions, labels, 4, [4, 1]).numpy()
    np.testing.assert_array_equal(order, again)  # a function of the seed
    assert not np.array_equal(order, other)


def test_pk_batches_from_the_index(synthetic):
    from tfmargin.data import train_dataset
    from tfmargin.data.sources import IndexedSource

    src = IndexedSource(str(synthetic))
    teacher = np.arange(len(src) * 2, dtype=np.float32).reshape(len(src), 2)  # row i: 2i, 2i+1
    ds = train_dataset(str(synthetic), 12, images_per_identity=4, repeat=True, seed=1,
                       teacher=teacher)
    labels_of = np.asarray(src.labels())
    seen = set()
    for features, labels in ds.take(8):  # 14 identities x 5 images: 56 per pass, 4.7 batches
        labels = labels.numpy()
        assert features["image"].shape == (12, 112, 112, 3)
        _check_pk(labels, 3, 4)
        rows = (features["teacher"].numpy()[:, 0] / 2).astype(int)
        np.testing.assert_array_equal(labels_of[rows], labels)  # teacher rows follow images
        seen.update(labels.tolist())
    assert len(seen) == 14  # every identity comes round
    with pytest.raises(ValueError, match="divisible by K=5"):
        train_dataset(str(synthetic), 12, images_per_identity=5, repeat=True)


def test_array_feed_pk_and_plain():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(6), 7)  # 7 images each: one image per identity is left over
    images = rng.integers(0, 256, (42, 8, 8, 3), dtype=np.uint8)
    teacher = rng.normal(size=(42, 4)).astype(np.float32)
    feed = ArrayFeed(images, labels, teacher, batch_size=6, images_per_identity=3, seed=3)
    assert feed.batches_per_pass == (6 * 2 * 3) // 6
    for step in range(feed.batches_per_pass):
        x, y = feed.batch_at(step)
        _check_pk(y, 2, 3)
        index = [np.flatnonzero((images == img).all(axis=(1, 2, 3)))[0]
                 for img in np.round(x["image"] * 127.5 + 127.5).astype(np.uint8)]
        np.testing.assert_array_equal(x["teacher"], teacher[index])  # rows stay aligned
    plain = ArrayFeed(images, labels, batch_size=7, seed=3)
    one_pass = np.concatenate([plain.batch_at(s)[1] for s in range(6)])
    np.testing.assert_array_equal(np.sort(one_pass), np.sort(labels))  # a permutation
    assert not np.array_equal(one_pass, plain.batch_at(6)[1].tolist() * 6)
    # Batch i depends only on (seed, i): a resumed feed continues the same stream.
    resumed = ArrayFeed(images, labels, batch_size=7, seed=3, start_step=4, steps_per_epoch=2)
    np.testing.assert_array_equal(resumed[1][1], plain.batch_at(5)[1])
