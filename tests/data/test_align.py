"""Alignment against float64 references, and MTCNN on a real photograph available offline."""

import numpy as np
import pytest

from tfmargin.data.align import (ARCFACE_TEMPLATE, align_face, detect_and_align,
                                 similarity_matrix, template, umeyama, warp_affine)


def lstsq_similarity(src, dst):
    """Reference: a similarity is linear in (a, b, tx, ty) with x' = a x - b y + tx,
    y' = b x + a y + ty, so the least-squares fit is one float64 lstsq."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst):
        rows += [[x, -y, 1, 0], [y, x, 0, 1]]
        rhs += [u, v]
    a, b, tx, ty = np.linalg.lstsq(np.array(rows, float), np.array(rhs, float), rcond=None)[0]
    return np.array([[a, -b, tx], [b, a, ty]])


def test_template_is_the_published_constant():
    np.testing.assert_array_equal(ARCFACE_TEMPLATE[0], [38.2946, 51.6963])
    np.testing.assert_array_equal(ARCFACE_TEMPLATE[4], [70.7299, 92.2041])
    np.testing.assert_allclose(template(224), ARCFACE_TEMPLATE * 2)
    np.testing.assert_allclose(template(128)[:, 0], ARCFACE_TEMPLATE[:, 0] + 8)


def test_similarity_matches_lstsq_reference(rng):
    for _ in range(20):
        angle, scale = rng.uniform(-0.6, 0.6), rng.uniform(0.3, 3)
        rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        pts = (ARCFACE_TEMPLATE - 56) @ rot.T + rng.uniform(50, 400, 2)
        pts += rng.normal(0, 2, pts.shape)  # noisy: the fit is not exact
        m = similarity_matrix(pts)
        np.testing.assert_allclose(m, lstsq_similarity(pts, ARCFACE_TEMPLATE), atol=1e-9)


def test_similarity_matches_skimage(rng):
    from skimage.transform import SimilarityTransform
    pts = ARCFACE_TEMPLATE * 1.7 + [30, 12] + rng.normal(0, 3, (5, 2))
    ref = SimilarityTransform.from_estimate(pts, ARCFACE_TEMPLATE) \
        if hasattr(SimilarityTransform, "from_estimate") else None
    if ref is None:
        ref = SimilarityTransform()
        ref.estimate(pts, ARCFACE_TEMPLATE)
    np.testing.assert_allclose(similarity_matrix(pts), ref.params[:2], atol=1e-9)


def test_closed_form_similarity_equals_umeyama_svd(rng):
    for _ in range(20):
        points = template() * rng.uniform(0.7, 1.6) + rng.uniform(-20, 60, 2) \
            + rng.normal(0, 3, (5, 2))
        np.testing.assert_allclose(similarity_matrix(points), umeyama(points, template())[:2],
                                   atol=1e-9)


def test_warp_matches_float64_bilinear_reference(rng):
    img = rng.uniform(0, 255, (60, 80, 3))
    m = np.array([[0.9, -0.2, 5.3], [0.25, 1.1, -3.7]])
    out = warp_affine(img, m, 40)
    inv = np.linalg.inv(np.vstack([m, [0, 0, 1]]))
    for (i, j) in [(0, 0), (10, 17), (39, 39), (25, 3)]:  # scalar reference, pixel by pixel
        x, y, _ = inv @ [j, i, 1]
        x0, y0 = int(np.floor(x)), int(np.floor(y))
        val = np.zeros(3)
        fy, fx = y - y0, x - x0
        for dy, dx, wgt in [(0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx),
                            (1, 0, fy * (1 - fx)), (1, 1, fy * fx)]:
            yy, xx = y0 + dy, x0 + dx
            if 0 <= yy < 60 and 0 <= xx < 80:
                val += wgt * img[yy, xx]
        # float32 by design: ~1e-5 relative in the sample position, ~1e-2 grey levels here.
        np.testing.assert_allclose(out[i, j], val, atol=2e-2)


def test_align_face_recovers_known_crop(rng):
    # A face crop at the template, scaled x2 and shifted in a bigger canvas: aligning with the
    # moved landmarks must give the crop back (up to interpolation of a smooth image).
    yy, xx = np.mgrid[0:112, 0:112]
    crop = np.stack([xx * 2, yy * 2, (xx + yy)], -1).astype(np.float64)
    canvas = warp_affine(crop, [[2, 0, 40], [0, 2, 30]], (300, 320))
    pts = ARCFACE_TEMPLATE * 2 + [40, 30]
    out = align_face(canvas, pts)
    assert out.dtype == np.uint8 and out.shape == (112, 112, 3)
    inner = np.s_[2:-2, 2:-2]
    assert np.abs(out[inner].astype(float) - np.clip(np.round(crop[inner]), 0, 255)).max() <= 1
    out_u8 = align_face(np.clip(canvas, 0, 255).astype(np.uint8), pts)
    assert np.abs(out_u8[inner].astype(float) - crop[inner]).max() <= 2
    with pytest.raises(ValueError, match="5"):
        align_face(canvas, pts[:4])


def test_mtcnn_on_astronaut():
    from skimage import data
    image = data.astronaut()  # Eileen Collins, one frontal face near (x~180, y~90)
    faces = detect_and_align(image)
    assert len(faces) == 1
    face = faces[0]
    x, y, w, h = face.box
    assert face.score > 0.95
    assert 140 < x + w / 2 < 230 and 50 < y + h / 2 < 130
    left_eye, right_eye, nose, mouth_l, mouth_r = face.landmarks
    assert left_eye[0] < right_eye[0] and mouth_l[0] < mouth_r[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_l[1], mouth_r[1])
    assert face.aligned.shape == (112, 112, 3) and face.aligned.dtype == np.uint8
    # The crop puts the landmarks on the template: map them with the same matrix.
    m = similarity_matrix(face.landmarks)
    mapped = face.landmarks @ m[:, :2].T + m[:, 2]
    assert np.abs(mapped - ARCFACE_TEMPLATE).max() < 8


def test_align_photos_to_identity_folders(tmp_path):
    from skimage import data

    from tfmargin.data.convert import align_photos
    from tfmargin.data.images import decode_image, encode_png
    (tmp_path / "in" / "eileen").mkdir(parents=True)
    (tmp_path / "in" / "eileen" / "shot.png").write_bytes(encode_png(data.astronaut()))
    summary = align_photos(str(tmp_path / "in"), str(tmp_path / "out"), progress=False)
    assert (summary["written"], summary["no_face"]) == (1, 0)
    out = decode_image((tmp_path / "out" / "eileen" / "shot.jpg").read_bytes())
    ref = detect_and_align(data.astronaut())[0].aligned
    assert out.shape == (112, 112, 3) and np.abs(out.astype(int) - ref).mean() < 4
