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
