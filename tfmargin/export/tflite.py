"""TFLite export: fp32, fp16, dynamic-range and full-integer int8, optionally with integer I/O.

    export_tflite(model, "savedmodels/s/student_int8.tflite", "int8", representative="data/train.rec")

Modes (what each is for is in BUILD.md):
  fp32     float weights and compute; CPU (XNNPACK) and GPU delegate.
  fp16     float16 weights, dequantised at load; half the size; GPU delegate runs it in fp16.
  dynamic  int8 weights, float activations (quantised on the fly); no calibration.
  int8     full-integer: int8 weights and activations, calibrated on `representative` images;
           XNNPACK runs it fastest on CPU. With `integer_io` the input and output are int8 (or
           uint8) too and the graph is integer end to end, as NNAPI / vendor NPU delegates want.

Input: float32 [-1, 1] ((x - 127.5) / 127.5 RGB), or the quantised form of it with integer I/O.
Output: the L2-normalised embedding (one L2_NORMALIZATION op; int8 in the int8 file, so norms
are 1 within ~0.5%), except with integer I/O: the raw embedding, quantised; normalise it on
the host.

The converter reads a float SavedModel written through keras.export.ExportArchive (graph.py).
`TFLiteSource` writes it once for several conversions. Every file is checked for select-TF
(Flex) ops, run once in LiteRT, and, for fp32, compared with the Keras model.
"""

import contextlib
import os
import shutil
import tempfile
import warnings

import numpy as np

from tfmargin.evaluate.vectors import unit_rows
from tfmargin.export import graph
from tfmargin.export.contract import write_tflite
from tfmargin.export.model import ExportError, check_input, embedding_model
from tfmargin.export.ops import check_builtin_ops
from tfmargin.export.representative import DEFAULT_IMAGES, calibration_images

MODES = ("fp32", "fp16", "dynamic", "int8")
INTEGER_IO = {False: None, True: "int8", "int8": "int8", "uint8": "uint8"}
FP32_MIN_COSINE = 0.9999  # a correct fp32 conversion differs from Keras by float rounding only


class TFLiteSource:
    """A Keras backbone and the float SavedModels TFLite files are converted from, written to a
    temporary directory on first use (one per output normalisation). Use as a context manager,
    or call close(); export_tflite accepts it in place of a model."""

    def __init__(self, model):
        self.backbone = check_input(embedding_model(model))
        self._dir = None
        self._archives = {}

    def archive(self, normalize, batch_size=None):
        key = (bool(normalize), batch_size)
        if key not in self._archives:
            if self._dir is None:
                self._dir = tempfile.mkdtemp(prefix="tfmargin-export-")
            name = f"{'normalized' if normalize else 'raw'}-batch{batch_size or 'any'}"
            self._archives[key] = graph.write_archive(self.backbone, os.path.join(self._dir, name),
                                                      "float32", normalize, batch_size)
        return self._archives[key]

    def close(self):
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
        self._dir, self._archives = None, {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@contextlib.contextmanager
def tflite_source(model):
    """A TFLiteSource for `model` (a model, a .keras path, or an existing TFLiteSource)."""
    if isinstance(model, TFLiteSource):
        yield model
        return
    with TFLiteSource(model) as source:
        yield source


def _converter(archive, mode, images, io_type, batch_size=None):
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(archive, signature_keys=["serve"])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if mode == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]

        step = batch_size or 16  # a fixed-batch graph is calibrated in its own batch

        def representative_dataset():
            for start in range(0, len(images) - step + 1 if batch_size else len(images), step):
                yield {graph.INPUT_NAME: images[start:start + step]}

        converter.representative_dataset = representative_dataset
        if io_type:
            # Integer end to end: any op without an int8 kernel is a conversion error here
            # rather than a silent float island that an NPU delegate would hand back to the CPU.
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = getattr(tf, io_type)
            converter.inference_output_type = getattr(tf, io_type)
        else:
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
                                                   tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter


@contextlib.contextmanager
def interpreter_notice_hidden():
    """TensorFlow's int8 calibrator and tf2onnx build a tf.lite.Interpreter, whose deprecation
    notice concerns them, not the user (tfmargin runs TFLite files with ai-edge-litert)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"\s*Warning: tf\.lite\.Interpreter is "
                                "deprecated", category=UserWarning)
        yield


def convert(converter, where):
    """Run a TFLite converter; its multi-line failure becomes one line naming `where`."""
    try:
        with interpreter_notice_hidden():
            return converter.convert()
    except Exception as e:  # ConverterError and friends: keep the first informative line
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        first = next((ln for ln in lines if "error" in ln.lower()), lines[0] if lines else "")
        raise ExportError(f"{where}: TFLite conversion failed: {first[:300]}") from e


def run_tflite(content, images):
    """(B, D) float32 outputs of a .tflite (bytes or path) on float [-1, 1] images, through
    tfmargin.evaluate's LiteRT runner (quantised I/O converted with the file's scale)."""
    from tfmargin.evaluate.artifacts import TFLiteEmbedder

    if isinstance(content, (bytes, bytearray)):
        with tempfile.NamedTemporaryFile(suffix=".tflite") as f:
            f.write(content)
            f.flush()
            return TFLiteEmbedder(f.name, num_threads=1)(images)
    return TFLiteEmbedder(os.fspath(content), num_threads=1)(images)


def _verify(content, backbone, images, mode, normalize, where):
    """The file loads and runs in LiteRT, gives finite, input-dependent embeddings, and (fp32)
    the Keras model's embeddings."""
    out = run_tflite(content, images)
    if not np.all(np.isfinite(out)):
        raise ExportError(f"{where}: the converted {mode} model outputs non-finite values")
    if len(images) > 1 and np.allclose(out, out[:1], atol=1e-6):
        raise ExportError(f"{where}: the converted {mode} model gives every image the same output")
    if mode == "fp32":
        ref = np.asarray(backbone(images, training=False), np.float64)
        cos = np.sum(unit_rows(out) * unit_rows(ref), axis=1)
        if cos.min() < FP32_MIN_COSINE:
            raise ExportError(f"{where}: the fp32 TFLite model disagrees with Keras (min cosine "
                              f"{cos.min():.6f}); the conversion is broken")


def export_tflite(model, path, mode, representative=None, integer_io=False,
                  num_images=DEFAULT_IMAGES, normalize=None, seed=0, verify=True, card=None,
                  threshold_set=None, metadata=True, batch_size=None):
    """Convert `model` to a TFLite file at `path` (written atomically); returns `path`.

    Args:
      model: a Keras model (backbone or training model), a .keras path, or a TFLiteSource.
      mode: "fp32", "fp16", "dynamic" or "int8" (full-integer).
      representative: calibration images for int8 (see representative.py): an array, an
        iterable of batches, or a path to a training source / .bin / .npy.
      integer_io: int8 only. True or "int8": int8 input and output; "uint8": uint8.
      num_images: calibration images drawn from `representative`.
      normalize: L2-normalise inside (default: yes, except with integer I/O).
      verify: run the file in LiteRT and check it (see _verify) before it is written.
      card, threshold_set, metadata: the file carries TFLite metadata (its contract, measured
        from it, and `card` as model_card.json; tfmargin.export.contract), with the cosine
        thresholds at FAR 1e-3 / 1e-4 measured on `threshold_set` when given.
      batch_size: a fixed batch (1 for NPUs: the Edge TPU compiler and NPU delegates want
        static shapes); None keeps it dynamic, which LiteRT on CPU resizes freely.
    """
    where = os.fspath(path)
    if mode not in MODES:
        raise ExportError(f"{where}: mode must be one of {', '.join(MODES)}, got {mode!r}")
    if integer_io not in INTEGER_IO:
        raise ExportError(f"{where}: integer_io must be False, True, 'int8' or 'uint8', got "
                          f"{integer_io!r}")
    io_type = INTEGER_IO[integer_io]
    if io_type and mode != "int8":
        raise ExportError(f"{where}: integer_io needs mode 'int8' (full-integer), got {mode!r}")
    if normalize is None:
        normalize = io_type is None
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                   or batch_size < 1):
        raise ExportError(f"{where}: batch_size must be a positive integer or None, got "
                          f"{batch_size!r}")
    images = None
    if mode == "int8":
        images = calibration_images(representative, num_images, seed)
    with tflite_source(model) as source:
        content = convert(_converter(source.archive(normalize, batch_size), mode, images,
                                     io_type, batch_size), where)
        check_builtin_ops(content, where)
        if verify:
            probe = images[:8] if images is not None else np.random.default_rng(seed).uniform(
                -1, 1, (4, 112, 112, 3)).astype(np.float32)
            _verify(content, source.backbone, probe, mode, normalize, where)
    return write_tflite(where, content, card, threshold_set, metadata)
