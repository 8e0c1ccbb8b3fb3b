"""The input contract (tfmargin.pixels) against a float64 restatement, and its other forms."""

import numpy as np

from tfmargin import pixels

ALL = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)


def test_to_model_input_is_insightface_normalisation():
    want = (ALL.astype(np.float64) - 127.5) / 127.5
    got = pixels.to_model_input(ALL)
    assert got.dtype == np.float32 and got.min() == -1.0 and got.max() == 1.0
    np.testing.assert_array_equal(got, want.astype(np.float32))


def test_to_pixels_inverts_it_exactly():
    np.testing.assert_array_equal(pixels.to_pixels(pixels.to_model_input(ALL)), ALL)
    assert pixels.to_pixels(np.array([-1.5, 1.5])).tolist() == [0, 255]  # clipped


def test_graph_and_layer_forms_agree():
    import tensorflow as tf

    from tfmargin.data.pipeline import normalize

    ref = pixels.to_model_input(ALL)
    np.testing.assert_array_equal(pixels.to_model_input_tensor(tf.constant(ALL)).numpy(), ref)
    np.testing.assert_allclose(normalize(tf.constant(ALL)).numpy(), ref, rtol=0, atol=2e-7)
    layer = np.asarray(pixels.rescaling()(ALL.astype(np.float32)))
    np.testing.assert_allclose(layer, ref, rtol=0, atol=2.5e-7)


def test_quantize_input_keeps_every_pixel():
    """Integer-I/O files (scale 2/255, zero point -1 for int8, 127 for uint8): every pixel
    lands on a half before rounding; half-up keeps all 256 codes (q = p - 128, q = p), where
    numpy's half-to-even rounding merges neighbours."""
    import numpy as np

    from tfmargin.pixels import quantize_input, to_model_input

    p = np.arange(256)
    x = to_model_input(p.astype(np.uint8))  # float32, as the pipeline feeds it
    q8 = quantize_input(x, np.float32(2 / 255), -1, np.int8)
    np.testing.assert_array_equal(q8.astype(int), p - 128)
    qu = quantize_input(x, np.float32(2 / 255), 127, np.uint8)
    np.testing.assert_array_equal(qu.astype(int), p)
    assert len(np.unique(np.round(x / np.float32(2 / 255) - 1))) < 256  # what half-even does
