"""Test-side references, independent of tfmargin.export: the Keras model called directly with
numpy pre- and post-processing, and LiteRT / onnxruntime driven by hand."""

import numpy as np


def unit(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def to_float(images_u8):
    return (images_u8.astype(np.float64) - 127.5) / 127.5


def keras_embeddings(backbone, images_u8):
    """float64 unit embeddings of the Keras model on uint8 images."""
    return unit(backbone(to_float(images_u8).astype(np.float32), training=False))


def run_litert(path, images_u8):
    """Outputs of a .tflite on uint8 images, quantising the input / dequantising the output
    with the tensor's own scale and zero point; batch 1 per call."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    rows = []
    for img in to_float(images_u8):
        x = img[None]
        scale, zero = inp["quantization"]
        if inp["dtype"] != np.float32:
            info = np.iinfo(inp["dtype"])
            # the contract's rounding: half up (q = p - 128 for scale 2/255, zero point -1)
            x = np.clip(np.floor(x.astype(np.float64) / scale + zero + 0.5 + 1e-3), info.min,
                        info.max)
        it.set_tensor(inp["index"], x.astype(inp["dtype"]))
        it.invoke()
        y = it.get_tensor(out["index"]).astype(np.float64)
        scale, zero = out["quantization"]
        if out["dtype"] != np.float32:
            y = (y - zero) * scale
        rows.append(y[0])
    return np.stack(rows)


def cosines(a, b):
    return np.sum(unit(a) * unit(b), axis=1)
