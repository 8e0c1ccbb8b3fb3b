"""Small datasets for the data tests, built with lossless PNG so pixels can be checked exactly.

Image i has its whole first row set to (i % 256, i // 256, label): it identifies the image even
after a horizontal flip. The rest is a random, left-right asymmetric pattern.
"""

import numpy as np
import pytest

from tfmargin.data.images import encode_png
from tfmargin.data.recordio import write_insightface_dataset


def make_images(n, labels, size=112, seed=0):
    rng = np.random.default_rng(seed)
    imgs = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
    for i, lab in enumerate(labels):
        imgs[i, 0] = (i % 256, i // 256, lab)
    return imgs


def image_index(img_float):
    """Index of a pipeline output image (float in [-1, 1]) from its first row."""
    row = np.round(img_float[0, 0] * 127.5 + 127.5).astype(int)
    return int(row[0] + 256 * row[1])


@pytest.fixture(scope="session")
def small_rec(tmp_path_factory):
    """An insightface dataset (header records) of 40 PNG images, 8 identities x 5."""
    d = tmp_path_factory.mktemp("rec")
    labels = np.repeat(np.arange(8), 5)
    imgs = make_images(40, labels)
    write_insightface_dataset(str(d), [(int(lab), encode_png(im)) for lab, im in zip(labels, imgs)])
    return {"path": str(d / "train.rec"), "dir": str(d), "images": imgs, "labels": labels}
