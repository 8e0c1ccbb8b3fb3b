"""Parameter and multiply-add counts of a backbone, for reports and model cards."""

import math

from keras import layers

from tfmargin.models.layers import GroupedConv2D


def _kernel(layer):
    if isinstance(layer, GroupedConv2D):
        return layer.depthwise.kernel
    if isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D, layers.Dense)):
        return layer.kernel
    return None


def count_macs(model):
    """Multiply-adds of one forward pass (batch 1) of convolutions and dense layers.

    Counted as the field does (MobileFaceNet's "221M MAdds"): kernel size x output positions;
    BN, activations and additions are left out (BN folds into the conv at export).
    """
    total = 0
    for layer in model.layers:
        kernel = _kernel(layer)
        if kernel is not None:
            total += math.prod(kernel.shape) * math.prod(layer.output.shape[1:-1])
    return total


def count_params(model):
    """(trainable, total) parameters; BN moving statistics count only in the total."""
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    return trainable, model.count_params()
