"""Face alignment: a similarity transform of 5 landmarks onto the ArcFace template, and MTCNN.

Landmark order everywhere: left eye, right eye, nose tip, left mouth corner, right mouth corner,
"left" meaning the image's left (smaller x), as MTCNN and insightface return them; points are
(x, y) in pixels. The template is insightface's `arcface_dst` for 112x112 crops; other sizes
scale it as insightface's `estimate_norm` does (multiples of 112 scale it, others follow the
128-pixel layout with an 8-pixel x shift).
"""

from typing import NamedTuple

import numpy as np

ARCFACE_TEMPLATE = np.array([
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
], dtype=np.float64)

# MTCNN keypoint names in template order.
MTCNN_KEYPOINTS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


def template(size=112):
    """The ArcFace template (5, 2) for a size x size crop."""
    if size % 112 == 0:
        ratio, shift = size / 112.0, 0.0
    else:
        ratio = size / 128.0
        shift = 8.0 * ratio
    dst = ARCFACE_TEMPLATE * ratio
    dst[:, 0] += shift
    return dst


def umeyama(src, dst):
    """3x3 similarity (rotation, uniform scale, translation; no reflection) mapping `src` points
    onto `dst` in the least-squares sense (Umeyama 1991, eq. 40-42), float64."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[0] < 2:
        raise ValueError(f"umeyama: need two (N, D) point sets with N >= 2, got {src.shape} "
                         f"and {dst.shape}")
    n, dim = src.shape
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / n
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(dim)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:  # best orthogonal map is a reflection
        d[-1] = -1.0
    rot = u @ np.diag(d) @ vt
    var = src_c.var(0).sum()
    if var == 0:
        raise ValueError("umeyama: all source points coincide")
    scale = (s * d).sum() / var
    out = np.eye(dim + 1)
    out[:dim, :dim] = scale * rot
    out[:dim, dim] = dst_mean - scale * rot @ src_mean
    return out


def similarity_matrix(landmarks, size=112):
    """2x3 float64 matrix M mapping image points (x, y, 1) onto the ArcFace template of `size`
    (the matrix cv2.warpAffine / insightface's norm_crop would use)."""
    landmarks = np.asarray(landmarks, np.float64).reshape(-1, 2)
    if landmarks.shape != (5, 2):
        raise ValueError(f"landmarks: expected 5 (x, y) points, got shape {landmarks.shape}")
    if not np.all(np.isfinite(landmarks)):
        raise ValueError("landmarks: contain NaN or inf")
    return _similarity_2d(landmarks, template(size))


def _similarity_2d(src, dst):
    """Umeyama's least-squares similarity (no reflection) in the closed form 2-D allows.

    Plain Python floats summed in a fixed order: the same bits on every machine (an SVD may
    differ in the last bit between LAPACK builds, and the synthetic dataset's bytes must not)."""
    src = [tuple(map(float, p)) for p in src]
    dst = [tuple(map(float, p)) for p in dst]
    n = len(src)
    sx, sy = sum(p[0] for p in src) / n, sum(p[1] for p in src) / n
    dx, dy = sum(p[0] for p in dst) / n, sum(p[1] for p in dst) / n
    norm = dot = cross = 0.0
    for (x0, y0), (x1, y1) in zip(src, dst):
        x0, y0, x1, y1 = x0 - sx, y0 - sy, x1 - dx, y1 - dy
        norm += x0 * x0 + y0 * y0
        dot += x0 * x1 + y0 * y1
        cross += x0 * y1 - y0 * x1
    if norm == 0:
        raise ValueError("landmarks: all five points coincide")
    a, b = dot / norm, cross / norm  # scale * cos, scale * sin
    return np.array([[a, -b, dx - (a * sx - b * sy)], [b, a, dy - (b * sx + a * sy)]])


def warp_affine(image, matrix, size, border_value=0.0):
    """Bilinear warp of HxW(xC) `image` by the 2x3 `matrix` (source -> output) into a `size`
    (int or (height, width)) output; pixels mapped from outside the image take `border_value`.
    Same convention as cv2.warpAffine(image, matrix, size) with a constant border.

    float32 throughout (about 7x faster than float64; errors ~1e-2 grey levels), coefficients
    inverted in plain Python floats, so a given input gives the same bits on every machine.
    Returns float32."""
    image = np.asarray(image)
    h, w = image.shape[:2]
    out_h, out_w = (size, size) if np.isscalar(size) else size
    (a, b, tx), (c, d, ty) = [[float(v) for v in row] for row in np.asarray(matrix, np.float64)]
    det = a * d - b * c
    if det == 0:
        raise ValueError("warp_affine: the matrix is singular")
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det  # output pixel -> source position
    itx, ity = -(ia * tx + ib * ty), -(ic * tx + id_ * ty)
    src = image.reshape(h, w, -1)
    channels = src.shape[2]
    padded = np.full((h + 2, w + 2, channels), border_value, np.float32)  # reads outside: border
    padded[1:-1, 1:-1] = src
    flat = padded.reshape(-1, channels)
    gx = np.arange(out_w, dtype=np.float32)[None, :]
    gy = np.arange(out_h, dtype=np.float32)[:, None]
    sx = np.float32(ia) * gx + np.float32(ib) * gy + np.float32(itx + 1)
    sy = np.float32(ic) * gx + np.float32(id_) * gy + np.float32(ity + 1)
    np.minimum(np.maximum(sx, 0, out=sx), np.float32(w + 1 - 1e-3), out=sx)
    np.minimum(np.maximum(sy, 0, out=sy), np.float32(h + 1 - 1e-3), out=sy)
    x0, y0 = sx.astype(np.int32), sy.astype(np.int32)
    fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]
    i00 = y0 * np.int32(w + 2) + x0
    t00, t01 = np.take(flat, i00, axis=0), np.take(flat, i00 + 1, axis=0)
    t10, t11 = np.take(flat, i00 + (w + 2), axis=0), np.take(flat, i00 + (w + 3), axis=0)
    # In place, in this order: top row, bottom row, then between them.
    t01 -= t00
    t01 *= fx
    t00 += t01
    t11 -= t10
    t11 *= fx
    t10 += t11
    t10 -= t00
    t10 *= fy
    t00 += t10
    return t00.reshape(out_h, out_w, *image.shape[2:])


def align_face(image, landmarks, size=112):
    """Aligned uint8 (size, size, 3) crop of the face whose 5 landmarks are given.

    `image`: HxWx3 RGB, uint8 or float in [0, 255]; `landmarks`: (5, 2) (x, y) in template
    order. Bilinear warp of the least-squares similarity transform onto the ArcFace template.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"align_face: expected an HxWx3 image, got shape {image.shape}")
    out = warp_affine(image, similarity_matrix(landmarks, size), size)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


class Face(NamedTuple):
    """One detected face: box (x, y, width, height) in pixels, detector score, landmarks (5, 2)
    (x, y) in template order, and the aligned uint8 crop."""
    box: np.ndarray
    score: float
    landmarks: np.ndarray
    aligned: np.ndarray


_DETECTOR = None


def get_detector():
    """The shared MTCNN detector (weights ship inside the `mtcnn` wheel; built once)."""
    global _DETECTOR
    if _DETECTOR is None:
        try:
            from mtcnn import MTCNN
        except ImportError as e:
            raise ImportError("detect_and_align needs the `mtcnn` package "
                              "(pip install 'tfmargin[align]')") from e
        _DETECTOR = MTCNN(device="CPU:0")
    return _DETECTOR


def detect_and_align(image, size=112, min_score=0.9, min_face_size=20, detector=None):
    """Every face MTCNN finds in an HxWx3 RGB image, most confident first, as `Face` tuples
    with the aligned size x size crop. Returns [] when no face is found."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"detect_and_align: expected an HxWx3 RGB image, got {image.shape}")
    if image.dtype != np.uint8:
        image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    detector = detector or get_detector()
    found = detector.detect_faces(image, min_face_size=min_face_size)
    faces = []
    for det in found:
        score = float(det["confidence"])
        if score < min_score:
            continue
        points = np.array([det["keypoints"][k] for k in MTCNN_KEYPOINTS], np.float64)
        faces.append(Face(np.asarray(det["box"], np.float64), score, points,
                          align_face(image, points, size)))
    faces.sort(key=lambda f: -f.score)
    return faces
