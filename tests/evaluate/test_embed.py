"""embed() gives the same vectors whichever artifact runs one tiny Keras model."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from tfmargin.evaluate import Embedder, embed, load_embedder  # noqa: E402


def _tiny_model(batch_size=None):
    inp = keras.Input((112, 112, 3), batch_size=batch_size)
    x = keras.layers.Conv2D(8, 3, strides=4, activation="relu")(inp)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Conv2D(16, 3, strides=4, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(32)(x)
    return keras.Model(inp, x)


def _normalize(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    keras.utils.set_random_seed(3)
    d = tmp_path_factory.mktemp("artifacts")
    model = _tiny_model()
    # Non-trivial BatchNorm statistics, so that a wrong `training` flag would show.
    bn = model.layers[2]
    bn.moving_mean.assign(np.linspace(-0.2, 0.3, 8).astype(np.float32))
    bn.moving_variance.assign(np.linspace(0.5, 2.0, 8).astype(np.float32))
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (10, 112, 112, 3), dtype=np.uint8)

    paths = {"keras": str(d / "m.keras"), "saved_model": str(d / "sm"),
             "saved_model_uint8": str(d / "sm_uint8"), "tflite": str(d / "m.tflite"),
             "tflite_int8": str(d / "m_int8.tflite"), "tflite_uint8": str(d / "m_uint8.tflite"),
             "onnx": str(d / "m.onnx"), "onnx_nchw": str(d / "m_nchw.onnx")}
    model.save(paths["keras"])
    model.export(paths["saved_model"], format="tf_saved_model", verbose=False)
    model.export(paths["onnx"], format="onnx", verbose=False)

    # What the export issue ships: uint8 RGB in, preprocessing and L2 normalisation inside.
    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve(images):
        x = (tf.cast(images, tf.float32) - 127.5) / 127.5
        return {"embedding": tf.math.l2_normalize(model(x, training=False), axis=1)}

    archive.add_endpoint("serve", serve, input_signature=[
        tf.TensorSpec([None, 112, 112, 3], tf.uint8, name="images")])
    archive.write_out(paths["saved_model_uint8"], verbose=False)

    with open(paths["tflite"], "wb") as f:
        f.write(tf.lite.TFLiteConverter.from_saved_model(paths["saved_model"]).convert())
    with open(paths["tflite_uint8"], "wb") as f:
        f.write(tf.lite.TFLiteConverter.from_saved_model(paths["saved_model_uint8"]).convert())
    conv = tf.lite.TFLiteConverter.from_saved_model(paths["saved_model"])
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    float_images = (images.astype(np.float32) - 127.5) / 127.5
    conv.representative_dataset = lambda: ([float_images[i:i + 1]] for i in range(10))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    with open(paths["tflite_int8"], "wb") as f:
        f.write(conv.convert())

    import tf2onnx
    fn = tf.function(lambda x: model(x, training=False))
    tf2onnx.convert.from_function(
        fn, input_signature=(tf.TensorSpec((None, 112, 112, 3), tf.float32, name="input"),),
        inputs_as_nchw=["input"], output_path=paths["onnx_nchw"])

    # Independent reference: the model called directly, flip = reversed width axis.
    x = float_images
    raw = model(x, training=False).numpy().astype(np.float64)
    raw_flip = model(x[:, :, ::-1], training=False).numpy().astype(np.float64)
    return {"model": model, "images": images, "paths": paths, "raw": raw, "raw_flip": raw_flip}


def test_keras_model_follows_the_protocol(artifacts):
    a = artifacts
    np.testing.assert_allclose(embed(a["model"], a["images"], batch_size=4),
                               _normalize(a["raw"] + a["raw_flip"]), atol=2e-6)
    np.testing.assert_allclose(embed(a["model"], a["images"], batch_size=3, flip=False),
                               _normalize(a["raw"]), atol=2e-6)
    # Floats in [-1, 1] are taken as already preprocessed.
    x = (a["images"].astype(np.float32) - 127.5) / 127.5
    np.testing.assert_allclose(embed(a["model"], x, batch_size=4),
                               _normalize(a["raw"] + a["raw_flip"]), atol=2e-6)


@pytest.mark.parametrize("name", ["keras", "saved_model", "tflite", "onnx", "onnx_nchw"])
def test_float_artifacts_match_keras(artifacts, name):
    a = artifacts
    expected = _normalize(a["raw"] + a["raw_flip"])
    got = embed(a["paths"][name], a["images"], batch_size=4)
    assert got.dtype == np.float32 and got.shape == (10, 32)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_uint8_saved_model_and_tflite(artifacts):
    # These normalise inside, so flip-sum adds unit vectors: l2n(l2n(e) + l2n(e_flip)).
    a = artifacts
    expected = _normalize(_normalize(a["raw"]) + _normalize(a["raw_flip"]))
    for name in ("saved_model_uint8", "tflite_uint8"):
        embedder = load_embedder(a["paths"][name])
        assert embedder.input_dtype == np.uint8, name
        np.testing.assert_allclose(embed(embedder, a["images"], batch_size=4), expected,
                                   atol=1e-5, err_msg=name)
        np.testing.assert_allclose(embed(embedder, a["images"], flip=False),
                                   _normalize(a["raw"]), atol=1e-5, err_msg=name)


def test_int8_tflite_within_quantisation_tolerance(artifacts):
    a = artifacts
    embedder = load_embedder(a["paths"]["tflite_int8"])
    assert embedder.quantised_input and embedder.input_dtype == np.float32
    got = embed(embedder, a["images"], batch_size=4)
    expected = _normalize(a["raw"] + a["raw_flip"])
    cos = np.sum(got * expected, axis=1)
    assert cos.min() > 0.995, cos


def test_fixed_batch_artifacts_get_exactly_their_batch():
    class FixedThree(Embedder):
        batch = 3
        seen = []

        def __call__(self, x):
            self.seen.append(x.shape[0])
            return x.reshape(x.shape[0], -1)[:, :5].astype(np.float32) + 1.0

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 112, 112, 3), dtype=np.uint8)
    got = embed(FixedThree(), images, batch_size=4)
    assert set(FixedThree.seen) == {3}
    x = (images.astype(np.float32) - 127.5) / 127.5
    ref = x.reshape(7, -1)[:, :5] + x[:, :, ::-1].reshape(7, -1)[:, :5] + 2.0
    np.testing.assert_allclose(got, _normalize(ref), atol=1e-6)


def test_errors_name_the_problem(artifacts, tmp_path):
    a = artifacts
    with pytest.raises(ValueError, match="takes 112x112 images, got 96x96"):
        embed(a["paths"]["tflite"], np.zeros((2, 96, 96, 3), np.uint8))
    with pytest.raises(FileNotFoundError, match="nope.tflite"):
        embed(str(tmp_path / "nope.tflite"), a["images"])
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"x")
    with pytest.raises(ValueError, match="unknown artifact type '.pt'"):
        load_embedder(str(bad))
    with pytest.raises(ValueError, match="without saved_model.pb"):
        load_embedder(str(tmp_path))
    with pytest.raises(ValueError, match=r"expected images \(N, H, W, 3\)"):
        embed(a["model"], np.zeros((2, 112, 112), np.uint8))


def test_dedupe_runs_each_distinct_image_once_and_matches_full_embedding():
    rng = np.random.default_rng(11)
    photos = rng.integers(0, 256, (5, 112, 112, 3), dtype=np.uint8)
    order = np.array([0, 1, 0, 2, 3, 1, 4, 4, 2, 0])  # pairs reuse photos, as .bin files do
    images = photos[order]
    weights = rng.normal(size=(112 * 112 * 3, 16))
    seen = []

    def model(x):  # a linear "network" on float [-1, 1] batches, counting what it is shown
        seen.append(int(np.any(np.asarray(x) != 0, axis=(1, 2, 3)).sum()))  # not padding
        return np.asarray(x, np.float64).reshape(len(x), -1) @ weights

    full = embed(model, images, batch_size=4)
    seen.clear()
    deduped = embed(model, images, batch_size=4, dedupe=True)
    assert sum(seen) == 2 * len(photos)  # 5 photos and their mirror images, nothing more
    x = (images.astype(np.float64) - 127.5) / 127.5
    reference = _normalize(x.reshape(len(x), -1) @ weights + x[:, :, ::-1].reshape(len(x), -1) @ weights)
    np.testing.assert_allclose(deduped, reference, atol=1e-5)
    np.testing.assert_allclose(deduped, full, atol=1e-6)
