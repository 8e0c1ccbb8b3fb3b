"""Identity folders: listing rules, mixed formats through the pipeline, and folders -> .rec."""

import os

import numpy as np
import pytest

from tests.data.conftest import image_index, make_images
from tfmargin.data.convert import convert_to_rec
from tfmargin.data.folders import ImageFolder
from tfmargin.data.images import CorruptImageError, encode_jpeg, encode_png
from tfmargin.data.pipeline import train_dataset
from tfmargin.data.recordio import RecordIO


@pytest.fixture
def tree(tmp_path):
    """bob: 2 PNG + 1 BMP; alice: 2 PNG + a JPEG; carol: empty; plus stray files."""
    from PIL import Image
    imgs = make_images(6, [1, 1, 1, 0, 0, 0])
    root = tmp_path / "faces"
    for name in ("bob", "alice", "carol"):
        (root / name).mkdir(parents=True)
    (root / "bob" / "a.png").write_bytes(encode_png(imgs[0]))
    (root / "bob" / "b.PNG").write_bytes(encode_png(imgs[1]))
    Image.fromarray(imgs[2]).save(root / "bob" / "c.bmp")
    (root / "alice" / "a.png").write_bytes(encode_png(imgs[3]))
    (root / "alice" / "b.png").write_bytes(encode_png(imgs[4]))
    (root / "alice" / "c.jpg").write_bytes(encode_jpeg(imgs[5]))
    (root / "alice" / "notes.txt").write_text("not an image")
    (root / "README.md").write_text("stray")
    return str(root), imgs


def test_listing(tree):
    root, _ = tree
    f = ImageFolder(root)
    assert f.classes == ["alice", "bob"] and f.num_classes == 2  # sorted; empty carol dropped
    assert f.paths == [os.path.join("alice", n) for n in ("a.png", "b.png", "c.jpg")] + \
        [os.path.join("bob", n) for n in ("a.png", "b.PNG", "c.bmp")]
    assert f.labels.tolist() == [0, 0, 0, 1, 1, 1]
    data, label = f.read(5)
    assert label == 1 and data[:2] == b"BM"


def test_loose_images_hint(tmp_path):
    (tmp_path / "x.jpg").write_bytes(encode_jpeg(np.zeros((8, 8, 3), np.uint8)))
    with pytest.raises(ValueError, match="1 images lie directly in it"):
        ImageFolder(str(tmp_path))


def test_pipeline_mixed_formats(tree):
    root, imgs = tree
    ds = train_dataset(root, 3, seed=0, drop_remainder=False)
    seen = {}
    ref_all = (imgs.astype(np.float64) - 127.5) / 127.5
    for feats, y in ds:
        for x, lab in zip(feats["image"].numpy(), y.numpy()):
            i = image_index(x)
            if i not in range(6):  # the JPEG's first row is not exact: nearest reference
                i = int(np.argmin(np.abs(ref_all - x).mean(axis=(1, 2, 3))))
            seen[i] = (x, lab)
    assert sorted(seen) == list(range(6))
    for i, (x, lab) in seen.items():
        ref = (imgs[i].astype(np.float64) - 127.5) / 127.5
        assert lab == (1 if i < 3 else 0)  # bob is label 1, alice 0
        if i == 5:  # JPEG: compare with PIL's decode of the same file (another libjpeg build)
            from PIL import Image
            pil = np.asarray(Image.open(os.path.join(root, "alice", "c.jpg")).convert("RGB"))
            # chroma upsampling differs between the builds; a wrong image is ~85 off
            assert np.abs(x * 127.5 + 127.5 - pil).mean() < 3
        else:
            np.testing.assert_allclose(x, ref, atol=1e-6)


def test_folders_to_rec(tree, tmp_path):
    root, imgs = tree
    with open(os.path.join(root, "bob", "d.jpg"), "wb") as f:
        f.write(b"\xff\xd8\xff truncated")
    summary = convert_to_rec(root, str(tmp_path / "out"), progress=False)
    assert (summary["written"], summary["skipped_corrupt"], summary["reencoded"]) == (6, 1, 5)
    with RecordIO(str(tmp_path / "out" / "train.rec")) as r:
        assert r.num_classes == 2 and len(r) == 6
        assert r.identity_ranges().tolist() == [[1, 4], [4, 7]]
        assert r.read(3).image == open(os.path.join(root, "alice", "c.jpg"), "rb").read()
        assert all(rec.image[:3] == b"\xff\xd8\xff" for rec in r)  # all JPEG now
    assert open(tmp_path / "out" / "property").read().strip() == "2,112,112"
    with pytest.raises(CorruptImageError, match=os.path.join("bob", "d.jpg")):
        convert_to_rec(root, str(tmp_path / "strict"), progress=False, strict=True)
    assert not os.path.exists(tmp_path / "strict" / "train.rec")
