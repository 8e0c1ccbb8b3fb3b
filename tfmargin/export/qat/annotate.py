"""Annotating a rebuilt tf_keras backbone for tfmot, with QuantizeConfigs for what its 8-bit
registry cannot quantise (PReLU, tfmargin's GroupedConv2D)."""

from tfmargin.export.qat.tf_keras import grouped_conv_class, tf_modules

NEEDS_QUANTIZE_CONFIG = ("PReLU", "GroupedConv2D")


def quantize_configs():
    _, tfmot = tf_modules()
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


def _bn_after(model, kinds):
    """Names of the BatchNormalization layers whose input comes from a layer of `kinds`, read
    from the functional model's public config (tf_keras: inbound_nodes [[[name, i, j, {}]]])."""
    layers = model.get_config()["layers"]
    kind_of = {spec["name"]: spec["class_name"].split(">")[-1] for spec in layers}
    return {spec["name"] for spec in layers
            if kind_of[spec["name"]] == "BatchNormalization" and spec["inbound_nodes"]
            and kind_of.get(spec["inbound_nodes"][0][0][0]) in kinds}


def quantize_model(float_model, freeze_batch_norm=True):
    """(QAT model, {layer name: QuantizeConfig used}) of a rebuilt tf_keras model."""
    tf_keras, tfmot = tf_modules()
    q = tfmot.quantization.keras
    configs = quantize_configs()
    custom = {}
    # BN is quantisable by default only behind a layer tfmot knows (it folds the pair).
    orphan_bn = _bn_after(float_model, NEEDS_QUANTIZE_CONFIG)

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
    scope["GroupedConv2D"] = grouped_conv_class()
    with q.quantize_scope(scope):
        qat = q.quantize_apply(annotated)
    return qat, custom
