"""P x K identity batches: the tf.data sampler and the numpy feed."""

import numpy as np

from tfmargin.data.feed import ArrayFeed


def _check_pk(labels, p, k):
    groups = labels.reshape(p, k)
    assert (groups == groups[:, :1]).all()  # each run of K shares one identity


def test_identity_batches_over_train_dataset(synthetic):
    from tfmargin.data import train_dataset
    from tfmargin.data.sampling import identity_batches

    windows = train_dataset(str(synthetic), 32, shuffle=False, repeat=True, seed=0)
    ds = identity_batches(windows, 3, 4, seed=1, group_buffer=16)
    seen = set()
    for features, labels in ds.take(6):
        labels = labels.numpy()
        assert features["image"].shape == (12, 112, 112, 3)
        _check_pk(labels, 3, 4)
        seen.update(labels.tolist())
    assert len(seen) >= 6  # groups from many identities are mixed


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
