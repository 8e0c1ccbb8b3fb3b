"""Verification .bin: safe loading, every item flavour, and the writer."""

import os
import pickle
import re
import struct

import numpy as np
import pytest

from tfmargin.data.images import encode_png
from tfmargin.data.verification_bin import (UnsafePickleError, load_verification_bin,
                                            load_verification_encoded, save_verification_bin)


def _images(rng, n=4, size=112):
    return rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


def py2_pickle(bins, issame):
    """The opcodes Python 2's cPickle (protocol 2) writes for (list of str, list of bool)."""
    out = b"\x80\x02](" + b"".join(b"T" + struct.pack("<I", len(b)) + b for b in bins) + b"e"
    out += b"](" + b"".join(b"\x88" if s else b"\x89" for s in issame) + b"e\x86."
    return out


def test_py2_bytes_pickle_png_exact(tmp_path, rng):
    imgs = _images(rng)
    path = tmp_path / "lfw.bin"
    path.write_bytes(py2_pickle([encode_png(i) for i in imgs], [True, False]))
    got, issame = load_verification_bin(str(path))
    assert got.dtype == np.uint8 and got.shape == (4, 112, 112, 3)
    np.testing.assert_array_equal(got, imgs)  # PNG is lossless: exact pixels back
    assert issame.dtype == bool and issame.tolist() == [True, False]


@pytest.mark.parametrize("protocol", [2, 5])
def test_numpy_array_items(tmp_path, rng, protocol):
    # cv2.imencode returns 1-D uint8 arrays; protocol 2 also exercises _codecs.encode.
    imgs = _images(rng)
    bins = [np.frombuffer(encode_png(i), np.uint8) for i in imgs]
    path = tmp_path / "cfp.bin"
    with open(path, "wb") as f:
        pickle.dump((bins, [np.bool_(False), np.bool_(True)]), f, protocol=protocol)
    got, issame = load_verification_bin(str(path))
    np.testing.assert_array_equal(got, imgs)
    assert issame.tolist() == [False, True]


def test_resize_to_112(tmp_path):
    img = np.full((90, 90, 3), (10, 200, 77), np.uint8)
    path = tmp_path / "small.bin"
    with open(path, "wb") as f:
        pickle.dump(([encode_png(img)] * 2, [True]), f, protocol=2)
    got, _ = load_verification_bin(str(path))
    assert got.shape == (2, 112, 112, 3)
    np.testing.assert_array_equal(got[0], np.broadcast_to(np.uint8([10, 200, 77]), (112, 112, 3)))


class _Evil:
    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return self.fn, (self.arg,)


@pytest.mark.parametrize("kind", ["os.system", "eval"])
def test_malicious_pickle_refused_without_side_effect(tmp_path, kind):
    marker = tmp_path / "pwned"
    if kind == "os.system":
        payload = _Evil(os.system, f"touch {marker}")
    else:
        payload = _Evil(eval, f"open({str(marker)!r}, 'w').close()")
    path = tmp_path / "evil.bin"
    with open(path, "wb") as f:
        pickle.dump(([payload, b"x"], [True]), f, protocol=2)
    expected = "posix.system|os.system" if kind == "os.system" else "__builtin__.eval|builtins.eval"
    with pytest.raises(UnsafePickleError, match=f"{path}: refused to load ({expected})"):
        load_verification_bin(str(path))
    assert not marker.exists()


def test_codecs_encode_other_than_latin1_refused(tmp_path):
    # _codecs.encode is admitted for protocol-2 bytes only with the latin-1 codec.
    data = (b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x05\x00\x00\x00rot13\x86R"
            b"]\x86.")
    path = tmp_path / "codec.bin"
    path.write_bytes(data)
    with pytest.raises(UnsafePickleError, match="rot13"):
        load_verification_bin(str(path))


def test_malformed_files_name_the_file(tmp_path, rng):
    path = tmp_path / "bad.bin"
    path.write_bytes(b"not a pickle at all")
    with pytest.raises(ValueError, match=f"{path}: not a verification .bin"):
        load_verification_bin(str(path))
    with open(path, "wb") as f:
        pickle.dump(([b"a", b"b", b"c"], [True]), f)
    with pytest.raises(ValueError, match="3 images for 1 pairs"):
        load_verification_bin(str(path))
    with open(path, "wb") as f:
        pickle.dump(([encode_png(_images(rng, 1)[0]), b"garbage"], [True]), f)
    with pytest.raises(ValueError, match=f"{path}: image 1: cannot decode"):
        load_verification_bin(str(path))


def test_save_round_trip(tmp_path, rng):
    imgs = _images(rng, 6)
    pngs = [encode_png(i) for i in imgs]
    path = str(tmp_path / "out.bin")
    save_verification_bin(path, pngs, [True, False, True])
    # The standard (unrestricted) pickle reads what we wrote: the format, not our reader.
    with open(path, "rb") as f:
        bins, issame = pickle.load(f, encoding="bytes")
    assert bins == pngs and issame == [True, False, True]
    got, same = load_verification_bin(path)
    np.testing.assert_array_equal(got, imgs)
    # uint8 arrays are JPEG-encoded: close to the originals for a smooth image.
    smooth = np.broadcast_to(np.linspace(0, 255, 112, dtype=np.uint8)[None, :, None],
                             (2, 112, 112, 3)).copy()
    save_verification_bin(path, smooth, [False])
    got, same = load_verification_bin(path)
    assert np.abs(got.astype(int) - smooth).mean() < 2 and same.tolist() == [False]


class _Bomb:
    """Pickles as a call of an admitted global with a huge size: 60-100 bytes of file."""

    def __init__(self, call):
        self.call = call

    def __reduce__(self):
        return self.call


def _bombs():
    from numpy._core.multiarray import _reconstruct

    return {"bytearray": (bytearray, (2 ** 30,)),
            "ndarray": (np.ndarray, ((2 ** 33,), np.dtype("u1"))),
            "_reconstruct": (_reconstruct, (np.ndarray, (2 ** 33,), b"b"))}


class _Stateful:
    """Pickles as _reconstruct + BUILD with a state of our choosing."""

    def __init__(self, state):
        self.state = state

    def __reduce__(self):
        from numpy._core.multiarray import _reconstruct

        return (_reconstruct, (np.ndarray, (0,), b"b"), self.state)


def test_scalars_dtypes_states_and_repeats_are_bounded(tmp_path):
    from numpy._core.multiarray import scalar

    cases = {  # (pickled object, what the refusal says)
        "void": ([_Bomb((scalar, (np.dtype("V2000000000"),))), b"x"], "refused numpy dtype"),
        "no_data": ([_Bomb((scalar, (np.dtype("u1"),))), b"x"], "numpy scalar without data"),
        "object_state": ([_Stateful((1, (2 ** 31,), np.dtype("O"), False, [1])), b"x"],
                         "refused numpy dtype object"),
        "big_state": ([_Stateful((1, (2 ** 33,), np.dtype("u1"), False, b"")), b"x"],
                      "asks for more than"),
    }
    chunk = bytearray(8 << 20)  # inside the budget once, not 100 times by reference
    for name, (bins, words) in cases.items():
        path = tmp_path / f"{name}.bin"
        path.write_bytes(pickle.dumps((bins, [True]), protocol=4))
        with pytest.raises(UnsafePickleError, match=words):
            load_verification_encoded(path)
    path = tmp_path / "repeat.bin"
    path.write_bytes(pickle.dumps(([chunk] * 100, [True] * 50), protocol=2))
    assert path.stat().st_size < (8 << 20) + 4096
    with pytest.raises(UnsafePickleError, match="repeated references"):
        load_verification_encoded(path)


@pytest.mark.parametrize("kind", ["bytearray", "ndarray", "_reconstruct"])
def test_a_small_file_cannot_allocate_gigabytes(tmp_path, kind):
    path = tmp_path / f"{kind}.bin"
    path.write_bytes(pickle.dumps(([_Bomb(_bombs()[kind]), b"x"], [True]), protocol=2))
    assert path.stat().st_size < 200
    with pytest.raises(UnsafePickleError, match=rf"^{re.escape(str(path))}: refused: the pickle "
                                                r"asks for more than \d+ bytes"):
        load_verification_encoded(path)


def test_the_budget_admits_real_files(tmp_path, rng):
    # numpy-array images (as cv2.imencode returns) are built through the charged globals too
    images = rng.integers(0, 256, (4, 112, 112, 3), dtype=np.uint8)
    from tfmargin.data import images as codec

    encoded = [np.frombuffer(codec.encode_jpeg(im, 95), np.uint8) for im in images]
    path = tmp_path / "arrays.bin"
    path.write_bytes(pickle.dumps((encoded, [True, False]), protocol=2))
    got, issame = load_verification_encoded(path)
    assert [bytes(e) for e in encoded] == got and issame.tolist() == [True, False]


def test_verification_dataset_names_the_image_at_its_edge(tmp_path, rng):
    from tfmargin.data import verification_dataset
    from tfmargin.data.images import CorruptImageError
    from tfmargin.data.pipeline import named_errors

    images = rng.integers(0, 256, (4, 112, 112, 3), dtype=np.uint8)
    path = tmp_path / "v.bin"
    save_verification_bin(path, images, [True, False])
    encoded, issame = load_verification_encoded(path)
    encoded[2] = b"\xff\xd8 not a jpeg"
    with open(path, "wb") as f:
        pickle.dump((encoded, issame.tolist()), f, protocol=4)
    with pytest.raises(CorruptImageError, match=rf"^{path}: image 2: cannot decode"):
        with named_errors(str(path)):
            for _ in verification_dataset(str(path), batch_size=2):
                pass
