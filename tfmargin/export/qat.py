"""Quantisation-aware training (QAT) with tensorflow-model-optimization: the only module that
imports tf_keras / tfmot (they accept nothing but tf_keras models; docs/toolchain.md).

    path, info = quantization_aware_training(trained_model, "student_qat_int8.tflite",
                                             data="data/train.rec", teacher="teacher.npy",
                                             steps=2000)

1. rebuild_tf_keras: the Keras 3 backbone is rebuilt layer by layer in tf_keras from its own
   config (same layer names), its weights are copied by name, and the rebuild must reproduce
   the Keras 3 outputs (TFKerasMismatchError otherwise). The embedding's Dense + BN is folded
   into one Dense (tfmot leaves that pair unfused: a float island in the int8 file).
2. quantize_model: every layer is annotated for tfmot; what its default 8-bit registry cannot
   quantise gets a QuantizeConfig here: PReLU (alpha quantised like a weight, output by moving
   average) and tfmargin's GroupedConv2D (a tf_keras twin whose depthwise kernel is quantised).
3. calibrate_ranges: the activation ranges, which tfmot starts at +-6 and moves by an EMA of
   decay 0.999 (so a short fine-tune would keep them wrong), are set from real batches.
4. fine_tune: N steps of the student's own loss, through its own head (the Keras 3 layer of the
   trained model, so the margin math is tfmargin.heads'): the MarginDistillation head with
   the frozen teacher centers and the batch's teacher embeddings, or the ArcFace head with its
   own (frozen) centers. BatchNorm statistics stay frozen (small fine-tuning batches would
   corrupt them). QAT must start from a trained float model.
5. The fake-quantised model converts to a full-integer TFLite file (float I/O with the
   normalisation kept float, or integer I/O), checked for Flex ops and against the QAT model.
"""

import inspect
import os
import shutil
import tempfile

import numpy as np

from tfmargin.atomic import write_bytes
from tfmargin.evaluate.vectors import unit_rows
from tfmargin.export.model import (ExportError, check_input, embedding_model, find_head,
                                   load_model)
from tfmargin.export.ops import check_builtin_ops

REBUILD_RTOL = 1e-4  # rebuilt outputs may differ from Keras 3's by float rounding only
# Layers tfmot's default 8-bit registry does not take; QuantizeConfigs below cover them.
NEEDS_QUANTIZE_CONFIG = ("PReLU", "GroupedConv2D")


class TFKerasMismatchError(ExportError):
    """The tf_keras rebuild does not compute what the Keras 3 model computes."""


def _modules():
    import tensorflow_model_optimization as tfmot
    import tf_keras

    return tf_keras, tfmot


# --- tf_keras twins and QuantizeConfigs --------------------------------------------------------

def _grouped_conv_class():
    tf_keras, _ = _modules()
    import tensorflow as tf

    class GroupedConv2D(tf_keras.layers.Layer):
        """tf_keras twin of tfmargin.models.GroupedConv2D (depthwise + reshape-sum)."""

        def __init__(self, filters, kernel_size, groups, strides=1, padding="same", **kwargs):
            super().__init__(**kwargs)
            self.filters, self.kernel_size, self.groups = filters, kernel_size, groups
            self.strides, self.padding = strides, padding

        def build(self, input_shape):
            k = self.kernel_size
            self.depthwise_kernel = self.add_weight(
                "depthwise_kernel", shape=(k, k, input_shape[-1], self.filters // self.groups))

        def call(self, x):
            y = tf.nn.depthwise_conv2d(x, self.depthwise_kernel,
                                       [1, self.strides, self.strides, 1], self.padding.upper())
            h, w = tf.shape(y)[1], tf.shape(y)[2]
            m = self.filters // self.groups
            y = tf.reshape(y, (-1, h * w * self.groups, y.shape[-1] // self.filters, m))
            return tf.reshape(tf.reduce_sum(y, axis=2), (-1, h, w, self.filters))

        def get_config(self):
            return {**super().get_config(), "filters": self.filters,
                    "kernel_size": self.kernel_size, "groups": self.groups,
                    "strides": self.strides, "padding": self.padding}

    return GroupedConv2D


def _quantize_configs():
    _, tfmot = _modules()
    q = tfmot.quantization.keras

    def output_quantizer():
        return q.quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False,
                                                   narrow_range=False)

    class WeightQuantizeConfig(q.QuantizeConfig):
        """Quantise one weight attribute (symmetric int8, like a kernel) and the output."""

        attribute = None

        def get_weights_and_quantizers(self, layer):
            return [(getattr(layer, self.attribute), q.quantizers.LastValueQuantizer(
                num_bits=8, per_axis=False, symmetric=True, narrow_range=True))]

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            setattr(layer, self.attribute, quantize_weights[0])

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return [output_quantizer()]

        def get_config(self):
            return {}

    class PReLUQuantizeConfig(WeightQuantizeConfig):
        attribute = "alpha"

    class OutputQuantizeConfig(WeightQuantizeConfig):
        """BatchNormalization after a GroupedConv2D: tfmot takes BN only behind a Conv /
        Depthwise conv. No weights quantised here; the output is."""

        def get_weights_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            pass

    class GroupedConvQuantizeConfig(WeightQuantizeConfig):
        attribute = "depthwise_kernel"

    return {"PReLU": PReLUQuantizeConfig, "GroupedConv2D": GroupedConvQuantizeConfig,
            "BatchNormalization": OutputQuantizeConfig}


# --- 1. rebuild ---------------------------------------------------------------------------------

def _layer_class(class_name):
    tf_keras, _ = _modules()
    if class_name == "GroupedConv2D":
        return _grouped_conv_class()
    cls = getattr(tf_keras.layers, class_name, None)
    if cls is None:
        raise ExportError(f"QAT: layer type {class_name} has no tf_keras counterpart")
    return cls


def _clean_config(cls, config):
    """The Keras 3 config keys the tf_keras layer takes; initialisers and dtype policies are
    dropped (the weights are copied, and QAT runs in float32)."""
    params = inspect.signature(cls.__init__).parameters
    out = {}
    for key, value in config.items():
        if key == "dtype" or (isinstance(value, dict) and "module" in value):
            continue
        if key in params or key in ("name", "trainable"):
            out[key] = value
    return out


def _resolve(args, tensors):
    """Keras 3 inbound-node arguments with each __keras_tensor__ replaced by the tf_keras one."""
    if isinstance(args, dict):
        if args.get("class_name") == "__keras_tensor__":
            return tensors[args["config"]["keras_history"][0]]
        return {k: _resolve(v, tensors) for k, v in args.items()}
    if isinstance(args, (list, tuple)):
        return [_resolve(a, tensors) for a in args]
    return args


def _dense_bn_pairs(config):
    """{BN name: Dense name} for each BatchNormalization fed only by a Dense (the embedding
    head): folded into the Dense, as TFLite would, because tfmot leaves Dense + BN unfused and
    the pair then converts to a float FULLY_CONNECTED / MUL / ADD island."""
    kinds = {spec["name"]: spec["class_name"] for spec in config["layers"]}
    consumers = {}
    for spec in config["layers"]:
        for ref in _histories(spec["inbound_nodes"]):
            consumers.setdefault(ref, []).append(spec["name"])
    pairs = {}
    for spec in config["layers"]:
        refs = list(_histories(spec["inbound_nodes"]))
        if spec["class_name"] == "BatchNormalization" and len(refs) == 1 \
                and kinds[refs[0]] == "Dense" and consumers[refs[0]] == [spec["name"]]:
            pairs[spec["name"]] = refs[0]
    return pairs


def _histories(nodes):
    stack = [nodes]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("class_name") == "__keras_tensor__":
                yield item["config"]["keras_history"][0]
            else:
                stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


def rebuild_tf_keras(backbone, check=True, rtol=REBUILD_RTOL, seed=0, fold_dense_bn=True):
    """A tf_keras functional model with the backbone's layers, names and weights (a BN right
    after a Dense is folded into it when `fold_dense_bn`; exact at inference)."""
    tf_keras, _ = _modules()
    config = backbone.get_config()
    if "layers" not in config:
        raise ExportError(f"QAT: {backbone.name!r} is not a functional model")
    folded = _dense_bn_pairs(config) if fold_dense_bn else {}
    tensors = {}
    for spec in config["layers"]:
        name, cls_name = spec["name"], spec["class_name"]
        if cls_name == "InputLayer":
            shape = spec["config"]["batch_shape"][1:]
            tensors[name] = tf_keras.Input(shape, name=name)
            continue
        if name in folded:
            tensors[name] = tensors[folded[name]]
            continue
        cls = _layer_class(cls_name)
        layer_config = _clean_config(cls, spec["config"])
        if name in folded.values():
            layer_config["use_bias"] = True
        layer = cls(**layer_config)
        node = spec["inbound_nodes"][0]
        args = _resolve(node["args"], tensors)
        tensors[name] = layer(*args)

    def first(refs):  # one [name, node, index] or a list of them
        return refs[0] if isinstance(refs[0], str) else refs[0][0]

    model = tf_keras.Model(tensors[first(config["input_layers"])],
                           tensors[first(config["output_layers"])], name=backbone.name)
    dense_of = {d: b for b, d in folded.items()}
    for layer in backbone.layers:
        weights = layer.get_weights()
        if not weights or layer.name in folded:
            continue
        if layer.name in dense_of:
            bn = backbone.get_layer(dense_of[layer.name])
            gamma, beta, mean, var = _bn_weights(bn)
            k = gamma / np.sqrt(var + bn.epsilon)
            bias = weights[1] if len(weights) > 1 else 0.0
            weights = [weights[0] * k, (bias - mean) * k + beta]
        model.get_layer(layer.name).set_weights(weights)
    if check:
        check_rebuild(backbone, model, rtol, seed)
    return model


def _bn_weights(bn):
    values = dict(zip((w.path.rsplit("/", 1)[-1] for w in bn.weights), bn.get_weights()))
    dim = bn.get_weights()[-1].shape
    return (values.get("gamma", np.ones(dim)), values.get("beta", np.zeros(dim)),
            values["moving_mean"], values["moving_variance"])


def check_rebuild(backbone, rebuilt, rtol=REBUILD_RTOL, seed=0):
    """TFKerasMismatchError unless the two models agree on random images (relative max error)."""
    x = np.random.default_rng(seed).uniform(-1, 1, (2, 112, 112, 3)).astype(np.float32)
    ref = np.asarray(backbone(x, training=False))
    out = np.asarray(rebuilt(x, training=False))
    err = float(np.max(np.abs(out - ref)) / max(np.max(np.abs(ref)), 1e-12))
    if not err <= rtol:
        raise TFKerasMismatchError(f"QAT: the tf_keras rebuild of {backbone.name!r} differs from "
                                   f"the Keras 3 model by {err:.2e} (relative), over {rtol:g}")
    return err


# --- 2. annotate and quantise -------------------------------------------------------------------

def quantize_model(float_model, freeze_batch_norm=True):
    """(QAT model, {layer name: QuantizeConfig used}) of a rebuilt tf_keras model."""
    tf_keras, tfmot = _modules()
    q = tfmot.quantization.keras
    configs = _quantize_configs()
    custom = {}
    # BN is quantisable by default only behind a layer tfmot knows (it folds the pair).
    orphan_bn = {layer.name for layer in float_model.layers
                 if type(layer).__name__ == "BatchNormalization"
                 and type(layer._inbound_nodes[0].inbound_layers).__name__
                 in NEEDS_QUANTIZE_CONFIG}

    def annotate(layer):
        layer = layer.__class__.from_config(layer.get_config())
        kind = type(layer).__name__
        if freeze_batch_norm and kind == "BatchNormalization":
            layer.trainable = False
        if kind in configs and (kind != "BatchNormalization" or layer.name in orphan_bn):
            custom[layer.name] = configs[kind].__name__
            return q.quantize_annotate_layer(layer, configs[kind]())
        return q.quantize_annotate_layer(layer)

    annotated = tf_keras.models.clone_model(float_model, clone_function=annotate)
    annotated.set_weights(float_model.get_weights())
    scope = {c.__name__: c for c in configs.values()}
    scope["GroupedConv2D"] = _grouped_conv_class()
    with q.quantize_scope(scope):
        qat = q.quantize_apply(annotated)
    return qat, custom


# --- 3. activation ranges -----------------------------------------------------------------------

EMA_DECAY = 0.999  # tfmot's MovingAverageQuantizer


# Range variables of tfmot's MovingAverageQuantizer (activations); weight quantisers
# ("kernel_min", "alpha_min", ...) take the last value, the input's AllValuesQuantizer
# ("quantize_layer_min") the running extreme: both are right after one training call.
EMA_RANGE_SUFFIXES = ("output_min", "output_max", "post_activation_min", "post_activation_max",
                      "pre_activation_min", "pre_activation_max")


def _ema_range_variables(qat):
    return [v for v in qat.non_trainable_variables
            if v.name.split(":")[0].endswith(EMA_RANGE_SUFFIXES)]


def calibrate_ranges(qat, images, passes=2, batch_size=32):
    """Set every moving-average range to the min / max its input reaches on `images`.

    A training call moves a range variable v to d*v + (1-d)*r, r the batch's range; r is
    recovered exactly from v before and after, and the variable set to the extreme r seen.
    Two passes: the second sees activations quantised with the first pass' ranges."""
    variables = _ema_range_variables(qat)
    for _ in range(passes):
        extreme = [None] * len(variables)
        for start in range(0, len(images), batch_size):
            before = [v.numpy().copy() for v in variables]
            qat(images[start:start + batch_size], training=True)
            for i, (v, b) in enumerate(zip(variables, before)):
                r = (v.numpy() - EMA_DECAY * b) / (1 - EMA_DECAY)
                v.assign(b)
                pick = np.minimum if v.name.split(":")[0].endswith("_min") else np.maximum
                extreme[i] = r if extreme[i] is None else pick(extreme[i], r)
        for v, r in zip(variables, extreme):
            v.assign(r.astype(v.dtype.as_numpy_dtype))
    return len(variables)


# --- 4. fine-tuning -----------------------------------------------------------------------------

def _array_batches(data, batch_size, seed):
    images, labels, *rest = data
    teacher = rest[0] if rest else None
    rng = np.random.default_rng(seed)
    n = len(labels)
    while True:
        order = rng.permutation(n)
        for start in range(0, n - batch_size + 1, batch_size):
            idx = np.sort(order[start:start + batch_size])
            yield ({"image": images[idx], "label": labels[idx],
                    **({"teacher": teacher[idx]} if teacher is not None else {})}, labels[idx])


def _cycle(iterable):
    while True:
        empty = True
        for item in iterable:
            empty = False
            yield item
        if empty:
            raise ExportError("QAT: the training data yielded no batches")


def training_batches(data, batch_size=64, teacher=None, seed=0):
    """Endless (image float32 [-1, 1], label int32, teacher float32 or None) batches from:
    a training source path (read with tfmargin.data.train_dataset; `teacher` as that takes
    it: an array, a .npy path or "labels"), a tf.data.Dataset / iterable of
    ({"image", "label", "teacher"?}, label) batches, or a tuple of arrays
    (images, labels[, teacher embeddings])."""
    from tfmargin.export.representative import _as_float

    if isinstance(data, (str, os.PathLike)):
        from tfmargin.data import train_dataset

        where = os.fspath(data)
        if not os.path.exists(where):
            raise FileNotFoundError(f"QAT data {where} does not exist")
        try:
            data = train_dataset(where, batch_size, shuffle=True, seed=seed, repeat=True,
                                 teacher=teacher)  # None: the embeddings the source carries
        except ValueError as e:
            raise ExportError(f"QAT data {where}: {e}") from None
        source = iter(data)
    elif isinstance(data, tuple) and len(data) in (2, 3) and hasattr(data[0], "shape"):
        source = _array_batches(data, batch_size, seed)
    else:
        source = _cycle(data)
    for item in source:
        features, label = item if isinstance(item, tuple) else (item, item["label"])
        t = features.get("teacher") if isinstance(features, dict) else None
        images = features["image"] if isinstance(features, dict) else features
        yield (_as_float(np.asarray(images), "QAT data"),
               np.asarray(label, np.int32).reshape(-1),
               None if t is None else np.asarray(t, np.float32))


def fine_tune(qat, head, batches, steps, learning_rate=1e-3, momentum=0.9, log=None):
    """`steps` SGD steps of cross-entropy on `head`'s margin logits; returns the losses."""
    import tensorflow as tf
    tf_keras, _ = _modules()
    from tfmargin.heads import MarginDistillationHead, compile_loss

    if compile_loss(head) is None:
        raise ExportError(f"QAT: head {type(head).__name__} adds its own objective; QAT "
                          "fine-tunes margin heads (MarginHead, MarginDistillationHead)")
    distill = isinstance(head, MarginDistillationHead)
    optimizer = tf_keras.optimizers.SGD(learning_rate, momentum=momentum)

    @tf.function
    def step(images, labels, teacher):
        with tf.GradientTape() as tape:
            emb = qat(images, training=True)
            logits = head([emb, labels, teacher] if distill else [emb, labels])
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        grads = tape.gradient(loss, qat.trainable_variables)
        optimizer.apply_gradients(zip(grads, qat.trainable_variables))
        return loss

    losses = []
    for i in range(steps):
        images, labels, teacher = next(batches)
        if distill and teacher is None:
            raise ExportError("QAT: a MarginDistillation student needs teacher embeddings in "
                              "its training data (pass teacher=...)")
        if teacher is None:
            teacher = np.zeros((len(labels), 1), np.float32)
        losses.append(float(step(images, labels, teacher)))
        if not np.isfinite(losses[-1]):
            raise ExportError(f"QAT: the loss became {losses[-1]} at step {i + 1}; lower the "
                              "learning rate")
        if log and (i + 1) % max(1, steps // 10) == 0:
            log(f"QAT step {i + 1}/{steps}: loss {losses[-1]:.4f}")
    return losses


# --- 5. conversion ------------------------------------------------------------------------------

def convert_qat(qat, integer_io=False, normalize=None, where="qat"):
    """Full-integer TFLite bytes of a fake-quantised tf_keras model."""
    import tensorflow as tf

    from tfmargin.export import graph
    from tfmargin.export.tflite import INTEGER_IO, convert

    io_type = INTEGER_IO[integer_io]
    if normalize is None:
        normalize = io_type is None
    module = tf.Module()
    module.model = qat
    fn = tf.function(graph.embedding_function(qat, "float32", normalize),
                     input_signature=[graph.image_spec("float32")])
    tmp = tempfile.mkdtemp(prefix="tfmargin-qat-")
    try:
        tf.saved_model.save(module, tmp, signatures={"serving_default": fn.get_concrete_function()})
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp, ["serving_default"])
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if io_type:
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = getattr(tf, io_type)
            converter.inference_output_type = getattr(tf, io_type)
        return convert(converter, where)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def quantization_aware_training(model, path, data, steps, head=None, teacher=None,
                                batch_size=64, learning_rate=1e-3, integer_io=False,
                                calibration_images=128, freeze_batch_norm=True, seed=0,
                                log=None):
    """Fine-tune a trained student with fake quantisation and write a full-integer TFLite file.

    Args:
      model: the trained Keras training model (backbone + head) or its .keras path; a bare
        backbone needs `head`.
      path: the .tflite to write (atomically).
      data: training batches (see training_batches): a training source path, a dataset or
        iterable of ({"image", "label", "teacher"?}, label), or arrays (images, labels[, teacher]).
      steps: fine-tuning steps (0 = calibrate the ranges and convert only).
      teacher: for a path source: the teacher embeddings as train_dataset takes them.
      integer_io: False (float I/O, normalised output), True / "int8" or "uint8".

    Returns a dict: path, losses, custom quantize configs, rebuild error, output agreement.
    """
    where = os.fspath(path)
    if steps < 0:
        raise ExportError(f"QAT: steps must be >= 0, got {steps}")
    model = load_model(model)
    backbone = check_input(embedding_model(model))
    head = head or find_head(model)
    if head is None:
        raise ExportError(f"QAT: model {model.name!r} has no margin head; pass the training model "
                          "(backbone + head) or head=, so that QAT trains with the student's loss")
    float_model = rebuild_tf_keras(backbone, check=False)
    rebuild_error = check_rebuild(backbone, float_model)
    qat, custom = quantize_model(float_model, freeze_batch_norm)
    batches = training_batches(data, batch_size, teacher, seed)
    calib, n = [], 0
    while n < calibration_images:
        images = next(batches)[0]
        calib.append(images)
        n += len(images)
    calib = np.concatenate(calib)[:calibration_images]
    ranges = calibrate_ranges(qat, calib)
    losses = fine_tune(qat, head, batches, steps, learning_rate, log=log)
    content = convert_qat(qat, integer_io, where=where)
    check_builtin_ops(content, where)
    from tfmargin.export.tflite import run_tflite

    probe = calib[:16]
    out = run_tflite(content, probe)
    if not np.all(np.isfinite(out)) or np.allclose(out, out[:1], atol=1e-6):
        raise ExportError(f"{where}: the QAT int8 model gives constant or non-finite embeddings; "
                          "QAT must start from a trained float model")
    ref = np.asarray(qat(probe, training=False), np.float64)
    cos = np.sum(unit_rows(out) * unit_rows(ref), axis=1)
    write_bytes(where, content)
    return {"path": where, "steps": steps, "losses": losses, "rebuild_relative_error": rebuild_error,
            "quantize_configs": custom, "calibrated_ranges": ranges,
            "tflite_vs_qat_model_min_cosine": float(cos.min()),
            "freeze_batch_norm": freeze_batch_norm, "learning_rate": learning_rate,
            "batch_size": batch_size, "head": type(head).__name__}
