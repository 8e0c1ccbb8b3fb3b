"""LFW pairs.txt parser on a small pairs file written here."""

import os

import numpy as np
import pytest

from tfmargin.data.pairs import load_pair_images, read_pairs

PAIRS = """2\t2
Alice\t1\t2
Bob\t2\t3
Alice\t1\tBob\t3
Carol_Ann\t1\tAlice\t2
Bob\t1\t2
Carol_Ann\t1\t2
Bob\t1\tCarol_Ann\t2
Alice\t2\tBob\t1
"""


def _folder(tmp_path, ext=".jpg"):
    for name, n in (("Alice", 2), ("Bob", 3), ("Carol_Ann", 2)):
        os.makedirs(tmp_path / "lfw" / name, exist_ok=True)
        for i in range(1, n + 1):
            (tmp_path / "lfw" / name / f"{name}_{i:04d}{ext}").write_bytes(b"")
    return str(tmp_path / "lfw")


def test_parses_matched_and_mismatched_pairs(tmp_path):
    root = _folder(tmp_path)
    f = tmp_path / "pairs.txt"
    f.write_text(PAIRS)
    pairs = read_pairs(str(f), root)
    j = os.path.join
    assert pairs.paths1[0] == j(root, "Alice", "Alice_0001.jpg")
    assert pairs.paths2[0] == j(root, "Alice", "Alice_0002.jpg")
    assert pairs.paths1[3] == j(root, "Carol_Ann", "Carol_Ann_0001.jpg")
    assert pairs.paths2[3] == j(root, "Alice", "Alice_0002.jpg")
    assert pairs.paths2[1] == j(root, "Bob", "Bob_0003.jpg")
    np.testing.assert_array_equal(pairs.issame, [1, 1, 0, 0, 1, 1, 0, 0])
    assert pairs.issame.dtype == bool


def test_single_number_header_and_png(tmp_path):
    root = _folder(tmp_path, ".png")
    f = tmp_path / "pairsDevTrain.txt"
    f.write_text("1\nBob 1 3\nAlice 2 Bob 1\n")
    pairs = read_pairs(str(f), root, ext="png")
    assert pairs.paths1 == [os.path.join(root, "Bob", "Bob_0001.png"),
                            os.path.join(root, "Alice", "Alice_0002.png")]
    assert pairs.issame.tolist() == [True, False]


def test_errors_name_file_and_line(tmp_path):
    root = _folder(tmp_path)
    f = tmp_path / "pairs.txt"
    f.write_text("1 1\nAlice 1 2\nAlice x Bob 1\n")
    with pytest.raises(ValueError, match=r"pairs.txt:3: cannot read 'Alice x Bob 1' as a pair: expected 'name i j'"):
        read_pairs(str(f), root)
    f.write_text("1 2\nAlice 1 2\nAlice 1 Bob 1\n")
    with pytest.raises(ValueError, match="promises 4 pairs but the file has 2"):
        read_pairs(str(f), root)
    f.write_text("ten pairs\nAlice 1 2\n")
    with pytest.raises(ValueError, match=r"pairs.txt:1: cannot read 'ten pairs'"):
        read_pairs(str(f), root)
    f.write_text("1\nAlice 1 9\nAlice 1 Bob 1\n")
    with pytest.raises(FileNotFoundError, match=r"pairs.txt:2: image .*Alice_0009.jpg"):
        read_pairs(str(f), root)
    assert read_pairs(str(f), root, check_exists=False).issame.tolist() == [True, False]


def test_load_pair_images_interleaves_like_a_bin(tmp_path):
    import tensorflow as tf

    root = _folder(tmp_path, ".png")
    colours = {}
    for k, (name, i) in enumerate([("Alice", 1), ("Alice", 2), ("Bob", 1), ("Bob", 2),
                                   ("Bob", 3), ("Carol_Ann", 1), ("Carol_Ann", 2)]):
        img = np.zeros((112, 112, 3), np.uint8)
        img[..., 0], img[..., 1], img[:5, :7, 2] = 30 * k, 255 - 20 * k, 200
        colours[(name, i)] = img
        path = os.path.join(root, name, f"{name}_{i:04d}.png")
        tf.io.write_file(path, tf.io.encode_png(img))
    f = tmp_path / "pairs.txt"
    f.write_text(PAIRS)
    pairs = read_pairs(str(f), root, ext=".png")
    images, issame = load_pair_images(pairs)
    assert images.shape == (16, 112, 112, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[0], colours[("Alice", 1)])
    np.testing.assert_array_equal(images[1], colours[("Alice", 2)])
    np.testing.assert_array_equal(images[6], colours[("Carol_Ann", 1)])
    np.testing.assert_array_equal(images[7], colours[("Alice", 2)])
    np.testing.assert_array_equal(issame, pairs.issame)
