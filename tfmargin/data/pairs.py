"""Verification pairs lists: parsing, loading their images, and writing them as a .bin.

Two list formats are read:
* LFW's `pairs.txt` (http://vis-www.cs.umass.edu/lfw/README.txt): a header `10 300` (sets,
  pairs of each kind per set; `pairsDevTrain.txt` has a single number), then `name i j`
  (same person) and `name1 i name2 j` (different people). Image i of `name` is
  `<image_dir>/<name>/<name>_<i:04d><ext>`. File order is kept, so insightface's ten
  contiguous folds are LFW's ten official sets.
* a plain list: `path1 path2 1|0` per line (1 = same), paths relative to `image_dir`.
Blank lines and `#` comments are skipped; a header, when present, must match the pair count.
"""

import os
from typing import NamedTuple

import numpy as np

from tfmargin.data.images import IMAGE_EXTENSIONS
from tfmargin.errors import TfmarginError


class Pairs(NamedTuple):
    paths1: list
    paths2: list
    issame: np.ndarray


def _lfw_path(root, name, number, ext):
    stem = os.path.join(root, name, f"{name}_{int(number):04d}")
    if ext is not None:
        return stem + (ext if ext.startswith(".") else "." + ext)
    for candidate in IMAGE_EXTENSIONS + tuple(e.upper() for e in IMAGE_EXTENSIONS):
        if os.path.exists(stem + candidate):
            return stem + candidate
    return stem + ".jpg"  # reported missing below


def _expected_pairs(tokens):
    """Pair count promised by a header line of one or two integers, else None."""
    if not 1 <= len(tokens) <= 2 or not all(t.isdigit() for t in tokens):
        return None
    return 2 * int(tokens[0]) if len(tokens) == 1 else 2 * int(tokens[0]) * int(tokens[1])


def _parse_line(tokens, image_dir, ext):
    if len(tokens) == 3 and tokens[1].isdigit() and tokens[2].isdigit() \
            and not tokens[0].lower().endswith(IMAGE_EXTENSIONS):
        name, i, j = tokens
        return _lfw_path(image_dir, name, i, ext), _lfw_path(image_dir, name, j, ext), True
    if len(tokens) == 4 and tokens[1].isdigit() and tokens[3].isdigit():
        name1, i, name2, j = tokens
        return _lfw_path(image_dir, name1, i, ext), _lfw_path(image_dir, name2, j, ext), False
    if len(tokens) == 3 and tokens[2] in ("0", "1"):
        return os.path.join(image_dir, tokens[0]), os.path.join(image_dir, tokens[1]), tokens[2] == "1"
    return None


def read_pairs(path, image_dir, ext=None, check_exists=True):
    """Parse a pairs list into Pairs(paths1, paths2, issame).

    `ext` fixes the LFW image extension (".jpg", "png"); None finds each image's on disk.
    Raises ValueError naming the file and line for a malformed line or a pair count that
    disagrees with the header, FileNotFoundError for a missing image (if check_exists).
    """
    try:
        with open(path, encoding="utf-8") as f:
            lines = [(n, line.split()) for n, line in enumerate(f, start=1)]
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text pairs list") from None
    lines = [(n, t) for n, t in lines if t and not t[0].startswith("#")]
    if not lines:
        raise ValueError(f"{path}: no pairs found")
    expected = _expected_pairs(lines[0][1])
    if expected is not None:
        lines = lines[1:]
    paths1, paths2, issame, line_numbers = [], [], [], []
    for lineno, tokens in lines:
        pair = _parse_line(tokens, image_dir, ext)
        if pair is None:
            raise ValueError(f"{path}:{lineno}: cannot read {' '.join(tokens)!r} as a pair: "
                             "expected 'name i j', 'name1 i name2 j' or 'path1 path2 0|1'")
        paths1.append(pair[0])
        paths2.append(pair[1])
        issame.append(pair[2])
        line_numbers.append(lineno)
    if expected is not None and len(issame) != expected:
        raise ValueError(f"{path}: the header promises {expected} pairs but the file has "
                         f"{len(issame)}")
    if check_exists:
        for lineno, p1, p2 in zip(line_numbers, paths1, paths2):
            for p in (p1, p2):
                if not os.path.isfile(p):
                    raise FileNotFoundError(f"{path}:{lineno}: image {p} does not exist")
    return Pairs(paths1, paths2, np.asarray(issame, dtype=bool))


def load_pair_images(pairs, size=112):
    """Decode the images of `pairs` -> (images uint8 (2N, size, size, 3), issame), laid out as
    a verification .bin (pair i = rows 2i, 2i + 1). Each distinct file is decoded once; images
    of another size are resized (they should already be aligned 112x112 crops)."""
    from tfmargin.data.images import decode_images

    interleaved = [p for pair in zip(pairs.paths1, pairs.paths2) for p in pair]
    unique, index = np.unique(np.asarray(interleaved), return_inverse=True)
    encoded = []
    for p in unique:
        with open(p, "rb") as f:
            encoded.append(f.read())
    images = decode_images(encoded, size=size, where=f"pairs images ({len(unique)} files)")
    return images[index], np.asarray(pairs.issame, dtype=bool)


def center_resize(image, size=112):
    """Largest centred square, resized bilinearly to size x size (uint8)."""
    import tensorflow as tf
    h, w = image.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    crop = image[top:top + s, left:left + s]
    if s == size:
        return np.ascontiguousarray(crop)
    out = tf.image.resize(crop, (size, size)).numpy()
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


class UnalignedPhotoError(TfmarginError, ValueError):
    """A verification photo that is not an aligned crop, given without align=True."""


def pairs_to_bin(pairs_path, images_root, output, *, align=False, size=112, progress=True):
    """Write an insightface .bin from a pairs list and its images; returns a Summary.

    Images already size x size are stored as they are; others are aligned with MTCNN when
    `align` (falling back to a centre crop when no face is found, counted as no_face and named),
    else refused with UnalignedPhotoError: a whole photo centre-cropped to 112x112 holds a torso,
    and a .bin of those measures nothing. A missing or corrupt image is an error naming it (a
    pair cannot be skipped without shifting the 10 folds). Nothing is written unless every
    image is ready.
    """
    from tfmargin.data.convert import Summary
    from tfmargin.data.images import decode_image, encode_jpeg
    from tfmargin.data.progress import Progress
    from tfmargin.data.verification_bin import save_verification_bin

    pairs = read_pairs(pairs_path, images_root)
    summary = Summary(pairs=len(pairs.issame), same=int(pairs.issame.sum()), aligned=0,
                      no_face=0, kept=0)
    cache = {}

    def encoded(path):
        if path in cache:
            return cache[path]
        with open(path, "rb") as f:
            data = f.read()
        image = decode_image(data, path)
        if image.shape[:2] == (size, size):
            summary["kept"] += 1
        elif align:
            from tfmargin.data.align import detect_and_align
            faces = detect_and_align(image, size)
            if faces:
                data = encode_jpeg(max(faces, key=lambda f: f.box[2] * f.box[3]).aligned)
                summary["aligned"] += 1
            else:
                data = encode_jpeg(center_resize(image, size))
                summary.skip("no_face", f"{path}: no face found; centre-cropped instead")
        else:
            raise UnalignedPhotoError(
                f"{path}: {image.shape[1]}x{image.shape[0]} pixels, not a {size}x{size} aligned "
                "face crop; add --align (align=True) to detect and align the faces, or align "
                "the photos first with `prepare align`")
        cache[path] = data
        return data

    bins = []
    with Progress(len(pairs.issame), "pairs2bin", enabled=progress) as bar:
        for a, b in zip(pairs.paths1, pairs.paths2):
            bins += [encoded(a), encoded(b)]
            bar.update(1)
    save_verification_bin(output, bins, pairs.issame)
    summary["images"] = len(cache)
    return summary
