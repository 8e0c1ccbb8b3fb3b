"""SavedModel: uint8 serving signature, preprocessing and normalisation inside; .keras and card."""

import json
import os

import numpy as np

from tests.export import reference as ref


def test_serving_signature_contract(exported, backbone, held_out):
    import tensorflow as tf

    folder, paths = exported
    loaded = tf.saved_model.load(paths["saved_model"])
    fn = loaded.signatures["serving_default"]
    _, spec = fn.structured_input_signature
    (name, image_spec), = spec.items()
    assert image_spec.dtype == tf.uint8 and image_spec.shape.as_list() == [None, 112, 112, 3]
    images = held_out[0][:12]
    out = fn(**{name: tf.constant(images)})
    emb = out["embedding"].numpy()
    assert emb.dtype == np.float32 and emb.shape == (12, 512)
    np.testing.assert_allclose(np.linalg.norm(emb.astype(np.float64), axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(emb, ref.keras_embeddings(backbone, images), atol=2e-5)


def test_keras_file_and_model_card(exported, student, backbone, held_out):
    import keras

    import tfmargin.models  # noqa: F401  (registers the backbone's layers for loading)

    folder, _ = exported
    reloaded = keras.saving.load_model(os.path.join(folder, "model.keras"), compile=False)
    # the embedding model, not the 3-input training model: one image in, one embedding out
    assert len(reloaded.inputs) == 1 and len(reloaded.outputs) == 1
    assert tuple(reloaded.inputs[0].shape[1:]) == (112, 112, 3)
    assert not any("head" in type(layer).__name__.lower() for layer in reloaded.layers)
    images = held_out[0][:4]
    np.testing.assert_allclose(ref.keras_embeddings(reloaded, images),
                               ref.keras_embeddings(backbone, images), atol=1e-6)
    card = json.load(open(os.path.join(folder, "model_card.json")))
    assert card["embedding_size"] == 512
    assert card["architecture"]["params"] == backbone.count_params()
    assert card["architecture"]["activations"] == ["ReLU"]
    assert card["architecture"]["head"]["class"] == "MarginDistillationHead"
    assert card["architecture"]["head"]["num_classes"] == student.get_layer(
        index=-1).num_classes
    assert card["teacher"] == "made-up centers (test)" and card["training"] == {"steps": 6}
    assert set(card["artifacts"]) == {"saved_model", "tflite_fp32", "tflite_fp16",
                                      "tflite_dynamic", "tflite_int8", "tflite_int8_io",
                                      "qat_int8", "onnx"}
    for rel in card["artifacts"].values():
        assert os.path.exists(os.path.join(folder, rel))
