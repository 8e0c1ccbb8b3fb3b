"""Around the synthetic dataset: contact sheet, palette PNG, calibration helpers, bench row."""

import os
import warnings

import numpy as np
import pytest

from tfmargin.data.images import decode_image
from tfmargin.datasets.synthetic import SyntheticDatasetWarning, render_identity, write_dataset
from examples.calibrate_synthetic.calibrate import (fit_fisherfaces, pixel_verification)
from tfmargin.datasets.synthetic.contact_sheet import (contact_sheet, encode_palette_png,
                                                   median_cut)


def test_palette_png_decodes_to_the_palette_colours():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (60 * 70, 3), dtype=np.uint8)
    palette, index = median_cut(pixels, 16)
    assert palette.shape == (16, 3) and index.max() < 16
    # every pixel takes its nearest palette colour
    d = ((pixels[:, None, :].astype(int) - palette[None].astype(int)) ** 2).sum(-1)
    np.testing.assert_array_equal(d[np.arange(len(pixels)), index], d.min(axis=1))
    png = encode_palette_png(index.reshape(60, 70), palette)
    decoded = tf.io.decode_png(png, channels=3).numpy()
    np.testing.assert_array_equal(decoded, palette[index].reshape(60, 70, 3))
    # few distinct colours are kept exactly
    few = np.array([[10, 20, 30], [200, 100, 0], [0, 0, 255]], np.uint8)[rng.integers(0, 3, 500)]
    palette, index = median_cut(few, 256)
    np.testing.assert_array_equal(palette[index], few)


def test_contact_sheet_tiles_are_the_dataset_images(tmp_path):
    import tensorflow as tf

    path = tmp_path / "sheet.png"
    sheet = contact_sheet(path, identities=2, images_per_identity=3, seed=4)
    assert sheet.shape == (2 * 112 + 2, 3 * 112 + 4, 3)
    tile = decode_image(render_identity(4, 1, 3)[2])
    np.testing.assert_array_equal(sheet[114:, 228:], tile)
    assert np.all(sheet[112:114] == 255)  # the gap between rows
    png = tf.io.decode_png(path.read_bytes(), channels=3).numpy()
    assert np.mean(np.abs(png.astype(int) - sheet)) < 6  # 256-colour palette
    with pytest.raises(ValueError, match="contact_sheet"):
        contact_sheet(None, identities=0)


def test_fisherfaces_solve_the_generalised_eigenproblem():
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(0)
    classes, per, dims = 6, 30, 20
    means = rng.normal(0, 3, (classes, dims))
    x = np.repeat(means, per, axis=0) + rng.normal(0, 1, (classes * per, dims))
    labels = np.repeat(np.arange(classes), per)
    mean, projection = fit_fisherfaces(x, labels, pca_dims=dims, shrinkage=0.0)
    assert projection.shape == (dims, classes - 1)
    np.testing.assert_allclose(mean, x.mean(axis=0))
    centred = x - x.mean(axis=0)
    centres = np.stack([centred[labels == c].mean(axis=0) for c in range(classes)])
    within = centred - centres[labels]
    sw = within.T @ within / len(x)
    sb = (centres * per).T @ centres / len(x)
    reference = linalg.eigh(sb, sw, eigvals_only=True)[::-1][:classes - 1]
    ratios = np.array([(w @ sb @ w) / (w @ sw @ w) for w in projection.T])
    np.testing.assert_allclose(ratios, reference, rtol=1e-6)


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("calib")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntheticDatasetWarning)
        write_dataset(out, 40, 5, seed=2, workers=1)
    return out


def test_pixel_verification_reports_a_model_free_baseline(tiny_set):
    report = pixel_verification(os.path.join(tiny_set, "test.bin"))
    assert report["pairs"] == 80  # 4 test identities x C(5,2) = 40 same pairs, as many different
    for kind in ("pixels", "grey_standardised"):
        r = report[kind]
        assert 0.0 <= r["accuracy"] <= 1.0 and r["near_duplicates"] == 0.0
        assert -1.0 <= r["different_cosine"] <= 1.0 and -1.0 <= r["same_cosine"] <= 1.0


@pytest.mark.slow
def test_calibrate_trains_both_backbones_and_scores_them(tiny_set):
    import keras

    from examples.calibrate_synthetic.calibrate import calibrate
    from tfmargin.models import backbone_names, register_backbone

    def tiny(embedding_size=512, **_):
        inputs = keras.Input((112, 112, 3), name="image")
        x = keras.layers.Conv2D(4, 3, strides=4, activation="relu")(inputs)
        x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, keras.layers.Dense(embedding_size)(x))

    for name in ("calib_tiny_a", "calib_tiny_b"):
        if name not in backbone_names():
            register_backbone(name, tiny)
    lines = []
    report = calibrate(tiny_set, larger="calib_tiny_a", smaller="calib_tiny_b", steps=2,
                       batch_size=8, log=lines.append)
    for name in ("calib_tiny_a", "calib_tiny_b"):
        assert report[name]["steps"] == 2
        assert 0.0 <= report[name]["test"]["accuracy"] <= 1.0
        assert "val" in report[name]
    assert report["gap"] == pytest.approx(report["calib_tiny_a"]["test"]["accuracy"]
                                          - report["calib_tiny_b"]["test"]["accuracy"])
    assert 0.0 <= report["fisherfaces"]["accuracy"] <= 1.0
    assert any("calib_tiny_a" in line for line in lines)


def test_bench_row_quick():
    from benchmarks import synthetic_generation

    record = synthetic_generation.run(quick=True, workers=2)
    assert record["name"] == "synthetic_generation"
    assert record["details"]["identical"] is True
    assert record["value"] > 0 and record["baseline_value"] > 0
    assert record["goal"] == 1.5
