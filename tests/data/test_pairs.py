"""Pairs lists: LFW pairs.txt and the plain 'a b 0|1' format."""

import os

import numpy as np
import pytest

from tfmargin.data.images import encode_png
from tfmargin.data.pairs import UnalignedPhotoError, center_resize, pairs_to_bin, read_pairs
from tfmargin.data.verification_bin import load_verification_bin


def test_read_both_formats(tmp_path):
    (tmp_path / "lfw.txt").write_text("10\t300\nAbel_P\t1\t4\nAbel_P\t2\tZoe_Q\t3\n")
    (tmp_path / "lfw.txt").write_text("1\t1\nAbel_P\t1\t4\nAbel_P\t2\tZoe_Q\t3\n")
    pairs = read_pairs(str(tmp_path / "lfw.txt"), "/imgs", check_exists=False)
    assert pairs.paths1 == ["/imgs/Abel_P/Abel_P_0001.jpg", "/imgs/Abel_P/Abel_P_0002.jpg"]
    assert pairs.paths2 == ["/imgs/Abel_P/Abel_P_0004.jpg", "/imgs/Zoe_Q/Zoe_Q_0003.jpg"]
    assert pairs.issame.tolist() == [True, False]
    (tmp_path / "plain.txt").write_text("a/1.png b/2.png 0\n# comment\nc.png d.png 1\n")
    pairs = read_pairs(str(tmp_path / "plain.txt"), "r", check_exists=False)
    assert (pairs.paths1, pairs.paths2) == (["r/a/1.png", "r/c.png"], ["r/b/2.png", "r/d.png"])
    assert pairs.issame.tolist() == [False, True]
    (tmp_path / "bad.txt").write_text("a b c d e\n")
    with pytest.raises(ValueError, match=r"bad.txt:1: cannot read 'a b c d e'"):
        read_pairs(str(tmp_path / "bad.txt"), "r")


def test_plain_pairs_to_bin_and_center_resize(tmp_path, rng):
    yy, xx = np.mgrid[0:150, 0:200]
    big = np.stack([xx, yy, xx + yy], -1).astype(np.uint8)  # smooth: JPEG keeps it close
    small = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)
    (tmp_path / "big.png").write_bytes(encode_png(big))
    (tmp_path / "small.png").write_bytes(encode_png(small))
    (tmp_path / "p.txt").write_text("small.png big.png 1\n")
    # a whole photo without align=True is refused (a centre crop of it holds a torso), and
    # nothing is written
    with pytest.raises(UnalignedPhotoError, match=rf"^{tmp_path / 'big.png'}: 200x150 pixels, "
                                                  "not a 112x112 aligned face crop; add --align"):
        pairs_to_bin(str(tmp_path / "p.txt"), str(tmp_path), str(tmp_path / "o.bin"),
                     progress=False)
    assert not os.path.exists(tmp_path / "o.bin")
    (tmp_path / "p.txt").write_text("small.png small.png 1\n")
    s = pairs_to_bin(str(tmp_path / "p.txt"), str(tmp_path), str(tmp_path / "o.bin"),
                     progress=False)
    assert (s["kept"], s["images"]) == (1, 1)
    imgs, same = load_verification_bin(str(tmp_path / "o.bin"))
    np.testing.assert_array_equal(imgs[0], small)
    np.testing.assert_array_equal(imgs[1], small)
    # center_resize, the fallback of align=True when no face is found
    ref = center_resize(big)
    assert ref.shape == (112, 112, 3)
    sq = big[:, 25:175]
    np.testing.assert_array_equal(center_resize(sq, 150), sq)
    (tmp_path / "m.txt").write_text("small.png nothere.png 0\n")
    with pytest.raises(FileNotFoundError, match=f"image {os.path.join(str(tmp_path), 'nothere.png')}"):
        pairs_to_bin(str(tmp_path / "m.txt"), str(tmp_path), str(tmp_path / "m.bin"),
                     progress=False)
