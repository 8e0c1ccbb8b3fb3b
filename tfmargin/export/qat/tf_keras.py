"""Rebuilding a Keras 3 backbone in tf_keras (the only Keras tfmot accepts), layer by layer
from its own config, with its weights copied by name and its outputs checked."""

import inspect

import numpy as np

from tfmargin.export.model import ExportError

REBUILD_RTOL = 1e-4  # rebuilt outputs may differ from Keras 3's by float rounding only


class TFKerasMismatchError(ExportError):
    """The tf_keras rebuild does not compute what the Keras 3 model computes."""


def tf_modules():
    import tensorflow_model_optimization as tfmot
    import tf_keras

    return tf_keras, tfmot


def grouped_conv_class():
    tf_keras, _ = tf_modules()
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


def _layer_class(class_name):
    tf_keras, _ = tf_modules()
    if class_name == "GroupedConv2D":
        return grouped_conv_class()
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
    tf_keras, _ = tf_modules()
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
