"""ONNX: onnxruntime on the exported file reproduces the Keras model."""

import numpy as np

from tests.export import reference as ref


def test_onnx_matches_keras(exported, backbone, held_out):
    import onnxruntime as ort

    _, paths = exported
    session = ort.InferenceSession(paths["onnx"], providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    assert inp.name == "image" and inp.shape == ["batch", 112, 112, 3]
    images = held_out[0][:8]
    out = session.run(None, {"image": ref.to_float(images).astype(np.float32)})[0]
    np.testing.assert_allclose(out, ref.keras_embeddings(backbone, images), atol=2e-5)


def test_grouped_conv_model_exports(tmp_path):
    """mbf's GroupedConv2D (width 2) reaches ONNX as plain ops."""
    import keras

    from tests.export.conftest import tiny_student, trained_looking
    from tfmargin.export import export_onnx
    from tfmargin.export.ops import onnx_ops

    keras.utils.set_random_seed(5)
    model = trained_looking(tiny_student("prelu", width=2, name="mbf_tiny"))
    path = export_onnx(model, tmp_path / "mbf.onnx")  # checks onnxruntime vs Keras itself
    ops = onnx_ops(path)
    assert "Conv" in ops and not any(op.startswith("PyFunc") or "Call" in op for op in ops)
