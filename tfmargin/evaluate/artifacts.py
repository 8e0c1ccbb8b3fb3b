"""Run any artifact a user ships as a face embedder: a Keras model (in memory or `.keras`), a
SavedModel directory, a `.tflite` file (LiteRT interpreter) or an `.onnx` file (onnxruntime).

Every runner is an `Embedder`: called on an NHWC batch, it returns (B, D) float32 embeddings.
`input_dtype` says what the batch holds: float32 = pixels already mapped to [-1, 1] by
(x - 127.5) / 127.5 (the model's own input), uint8 = raw RGB pixels (the artifact preprocesses
inside, as tfmargin's exported SavedModels do). Quantised TFLite inputs/outputs are converted with
the tensor's scale and zero point, so callers always see the float domain.
"""

import os

import numpy as np

from tfmargin.pixels import quantize_input


class Embedder:
    """Base: `kind`, `input_dtype` (np.float32 or np.uint8), `batch` (fixed batch size the
    artifact needs, or None), `image_size` ((H, W) if the artifact fixes it, else None)."""

    kind = "callable"
    input_dtype = np.float32
    batch = None
    image_size = None

    def __call__(self, x):
        raise NotImplementedError


class CallableEmbedder(Embedder):
    """Any Python callable mapping float32 [-1, 1] NHWC batches to embeddings."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, x):
        return np.asarray(self.fn(x), dtype=np.float32)


def _single_output(outputs, where):
    if isinstance(outputs, dict):
        if len(outputs) == 1:
            return next(iter(outputs.values()))
        if "embedding" in outputs:
            return outputs["embedding"]
        raise ValueError(f"{where}: {len(outputs)} outputs {sorted(outputs)}; expected one "
                         "(or one named 'embedding')")
    if isinstance(outputs, (list, tuple)):
        if len(outputs) != 1:
            raise ValueError(f"{where}: {len(outputs)} outputs; expected one embedding output")
        return outputs[0]
    return outputs


class KerasEmbedder(Embedder):
    kind = "keras"

    def __init__(self, model, where="keras model"):
        self.model = model
        self.where = where
        inputs = getattr(model, "inputs", None)
        if inputs:
            if len(inputs) != 1:
                raise ValueError(f"{where}: has {len(inputs)} inputs; evaluate the embedding "
                                 "model (the backbone), not the training model")
            if "uint8" in str(inputs[0].dtype):
                self.input_dtype = np.uint8
            shape = tuple(inputs[0].shape)
            if len(shape) == 4 and shape[1] and shape[2]:
                self.image_size = (int(shape[1]), int(shape[2]))

    def __call__(self, x):
        out = _single_output(self.model.predict_on_batch(x), self.where)
        return np.asarray(out, dtype=np.float32)


class SavedModelEmbedder(Embedder):
    kind = "saved_model"

    def __init__(self, path, signature="serving_default"):
        import tensorflow as tf

        self.tf = tf
        self.loaded = tf.saved_model.load(path)  # keep alive: the signature refers to it
        signatures = self.loaded.signatures
        if not signatures:
            raise ValueError(f"{path}: SavedModel has no serving signature")
        if signature not in signatures:
            if signature != "serving_default":
                raise ValueError(f"{path}: no signature {signature!r}; has {list(signatures)}")
            signature = next(iter(signatures))
        self.fn = signatures[signature]
        args, kwargs = self.fn.structured_input_signature
        specs = dict(kwargs)
        if args or len(specs) != 1:
            raise ValueError(f"{path}: signature {signature!r} takes {len(args) + len(specs)} "
                             "inputs; expected one image batch")
        (self.input_name, spec), = specs.items()
        self.spec_dtype = spec.dtype
        self.input_dtype = np.uint8 if spec.dtype == tf.uint8 else np.float32
        if spec.shape.rank == 4 and spec.shape[1] and spec.shape[2]:
            self.image_size = (int(spec.shape[1]), int(spec.shape[2]))
        if spec.shape.rank and spec.shape[0] is not None:
            self.batch = int(spec.shape[0])
        self.where = f"{path} signature {signature!r}"

    def __call__(self, x):
        tensor = self.tf.constant(x, dtype=self.spec_dtype)
        out = _single_output(self.fn(**{self.input_name: tensor}), self.where)
        return np.asarray(out, dtype=np.float32)


def _litert_interpreter(path, num_threads):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # LiteRT not installed: TensorFlow's (deprecated) copy runs the same file
        import tensorflow as tf
        Interpreter = tf.lite.Interpreter
    return Interpreter(model_path=path, num_threads=num_threads)


class TFLiteEmbedder(Embedder):
    kind = "tflite"

    def __init__(self, path, num_threads=None):
        self.interpreter = _litert_interpreter(path, num_threads or os.cpu_count())
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(f"{path}: {len(inputs)} inputs and {len(outputs)} outputs; expected "
                             "one image input and one embedding output")
        self.inp, self.out = inputs[0], outputs[0]
        scale, _ = self.inp["quantization"]
        self.quantised_input = self.inp["dtype"] in (np.int8, np.uint8) and scale > 0
        # uint8 without quantisation parameters: raw pixels, preprocessing inside the model.
        if self.inp["dtype"] == np.uint8 and not self.quantised_input:
            self.input_dtype = np.uint8
        signature = self.inp.get("shape_signature", self.inp["shape"])
        if signature[0] != -1:
            self.batch = int(signature[0])
        if len(signature) == 4 and signature[1] > 0 and signature[2] > 0:
            self.image_size = (int(signature[1]), int(signature[2]))
        self.where = path
        self._allocated_batch = None

    def __call__(self, x):
        n = x.shape[0]
        if self.batch is not None and n != self.batch:
            # A fixed-batch file (the NPU export) on any count: whole batches, the last padded.
            b = self.batch
            parts = [x[i:i + b] for i in range(0, n, b)]
            return np.concatenate([self(np.concatenate([p, np.zeros((b - len(p), *p.shape[1:]),
                                                                    p.dtype)]))[:len(p)]
                                   for p in parts]) if n else np.zeros(
                (0, int(self.out["shape"][-1])), np.float32)
        if self.batch is None and self._allocated_batch != n:
            self.interpreter.resize_tensor_input(self.inp["index"], [n, *x.shape[1:]])
            self.interpreter.allocate_tensors()
            self._allocated_batch = n
        elif self.batch is not None and self._allocated_batch is None:
            self.interpreter.allocate_tensors()
            self._allocated_batch = self.batch
        if self.quantised_input:
            scale, zero = self.inp["quantization"]
            x = quantize_input(x, scale, zero, self.inp["dtype"])
        self.interpreter.set_tensor(self.inp["index"], np.asarray(x, dtype=self.inp["dtype"]))
        self.interpreter.invoke()
        y = self.interpreter.get_tensor(self.out["index"])
        scale, zero = self.out["quantization"]
        if self.out["dtype"] in (np.int8, np.uint8) and scale > 0:
            return ((y.astype(np.float32) - zero) * scale).reshape(n, -1)
        return np.array(y, dtype=np.float32).reshape(n, -1)


class OnnxEmbedder(Embedder):
    kind = "onnx"

    def __init__(self, path, num_threads=None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
        options.log_severity_level = 3
        self.session = ort.InferenceSession(path, sess_options=options,
                                            providers=["CPUExecutionProvider"])
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1:
            raise ValueError(f"{path}: {len(inputs)} inputs; expected one image input")
        self.input_name = inputs[0].name
        self.output_name = outputs[0].name
        shape = inputs[0].shape
        if inputs[0].type == "tensor(uint8)":
            self.input_dtype = np.uint8
            self.feed_dtype = np.uint8
        elif inputs[0].type == "tensor(float)":
            self.feed_dtype = np.float32
        else:
            raise ValueError(f"{path}: input type {inputs[0].type} is not float32 or uint8")
        # Models converted from PyTorch (insightface's included) take NCHW.
        self.nchw = len(shape) == 4 and shape[1] == 3 and shape[3] != 3
        if isinstance(shape[0], int) and shape[0] > 0:
            self.batch = shape[0]
        spatial = shape[2:4] if self.nchw else shape[1:3]
        if len(shape) == 4 and all(isinstance(s, int) and s > 0 for s in spatial):
            self.image_size = tuple(spatial)

    def __call__(self, x):
        x = np.asarray(x, dtype=self.feed_dtype)
        if self.nchw:
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        y = self.session.run([self.output_name], {self.input_name: x})[0]
        return np.asarray(y, dtype=np.float32).reshape(x.shape[0], -1)


def _load_keras(path):
    from tfmargin.models.io import load_backbone

    # A classifier file (backbone + head) is evaluated through its backbone.
    return KerasEmbedder(load_backbone(path), where=path)


def load_embedder(model, num_threads=None):
    """An Embedder for `model`: an Embedder, a Keras model, a path (.keras / .h5, SavedModel
    directory, .tflite, .onnx) or a callable on float32 [-1, 1] NHWC batches."""
    if isinstance(model, Embedder):
        return model
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.exists(path):
            raise FileNotFoundError(f"model {path} does not exist")
        if os.path.isdir(path):
            if not os.path.exists(os.path.join(path, "saved_model.pb")):
                raise ValueError(f"model {path}: a directory without saved_model.pb is not a "
                                 "SavedModel")
            return SavedModelEmbedder(path)
        ext = os.path.splitext(path)[1].lower()
        if ext in (".keras", ".h5"):
            return _load_keras(path)
        if ext == ".tflite":
            return TFLiteEmbedder(path, num_threads)
        if ext == ".onnx":
            return OnnxEmbedder(path, num_threads)
        raise ValueError(f"model {path}: unknown artifact type {ext!r} (expected .keras, .h5, "
                         ".tflite, .onnx or a SavedModel directory)")
    if hasattr(model, "predict_on_batch"):
        return KerasEmbedder(model)
    if callable(model):
        return CallableEmbedder(model)
    raise TypeError(f"cannot run a {type(model).__name__} as an embedder")
