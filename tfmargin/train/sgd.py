"""The recipes' optimiser: SGD with momentum and weight decay, decayed the paper's way.

The paper's `wd=5e-4` is MXNet's: `sgd_mom_update` adds `wd * w` to the gradient *before*
momentum (`mom = mu*mom - lr*(g + wd*w); w += mom`) and insightface decays only weights and
gammas (BatchNorm scales, PReLU slopes), never biases or BatchNorm betas. Keras'
`SGD(weight_decay=)` is decoupled (`w -= lr*wd*w` beside momentum) and decays every variable;
with momentum 0.9 its steady-state shrinkage is about 10x weaker (docs/training.md). So:

* `weight_decay_mode="coupled"` (default, the paper): `CoupledSGD`, MXNet's rule, with
  biases and betas exempt.
* `weight_decay_mode="decoupled"`: Keras' own SGD(weight_decay=), every variable decayed.

Frozen teacher centers are non-trainable weights: no optimiser ever sees (or decays) them.
"""

import keras
import numpy as np
from keras import ops

from tfmargin.train import schedule
from tfmargin.train.config import WEIGHT_DECAY_MODES
# Variable names (the last part of a Keras variable's path) that MXNet/insightface leave undecayed.
DECAY_EXEMPT = ("bias", "beta")


class CenterSlots:
    """Optimiser state saved while class centers were held (D, C): their momentum slots come
    back transposed, as the centers themselves do (heads/centers.py), so that a run backed up
    before the layout changed resumes. A slot of square centers (as many classes as
    dimensions) cannot be told apart and loads as it is."""

    def load_own_variables(self, store):
        if len(store.keys()) != len(self.variables):
            return super().load_own_variables(store)  # Keras' own warning
        values = {}
        for i, variable in enumerate(self.variables):
            value, shape = store[str(i)], tuple(variable.shape)
            if (len(shape) == 2 and "centers" in variable.name
                    and tuple(value.shape) == shape[::-1] != shape):
                value = np.asarray(value).T
            values[str(i)] = value
        return super().load_own_variables(values)


@keras.saving.register_keras_serializable(package="tfmargin")
class DecoupledSGD(CenterSlots, keras.optimizers.SGD):
    """Keras' SGD (weight decay decoupled, every variable decayed) that also resumes from
    optimiser state saved with (D, C) centers."""


@keras.saving.register_keras_serializable(package="tfmargin")
class CenterLossScale(CenterSlots, keras.optimizers.LossScaleOptimizer):
    """The loss scaling Keras' compile wraps an optimiser in under mixed_float16, which also
    resumes the momentum of (D, C) centers (its state holds the inner optimiser's)."""


@keras.saving.register_keras_serializable(package="tfmargin")
class CoupledSGD(CenterSlots, keras.optimizers.SGD):
    """SGD (momentum, not Nesterov) with L2 weight decay joined to the gradient before
    momentum, as MXNet's `sgd_mom_update`: `v = mu*v - lr*(g + wd*w); w += v`. Variables whose
    name is in `exempt` (default: biases, BatchNorm betas) get no decay."""

    def __init__(self, learning_rate=0.01, momentum=0.0, coupled_weight_decay=0.0,
                 exempt=DECAY_EXEMPT, **kwargs):
        if kwargs.get("weight_decay"):
            raise ValueError("CoupledSGD: use coupled_weight_decay, not weight_decay (which "
                             "Keras applies decoupled)")
        kwargs.pop("weight_decay", None)
        if kwargs.get("nesterov"):
            raise ValueError("CoupledSGD: MXNet's rule has no Nesterov momentum")
        super().__init__(learning_rate=learning_rate, momentum=momentum, **kwargs)
        self.coupled_weight_decay = float(coupled_weight_decay)
        self.exempt = tuple(exempt)

    def decays(self, variable):
        """Whether `variable` is decayed (decided by its name, at trace time). The TensorFlow
        backend hands update_step the underlying tf.Variable, named like "bias:0"."""
        name = variable.name.split("/")[-1].split(":")[0]
        return bool(self.coupled_weight_decay) and name not in self.exempt

    def update_step(self, gradient, variable, learning_rate):
        if self.decays(variable):
            gradient = ops.add(ops.cast(gradient, variable.dtype),
                               ops.multiply(ops.cast(self.coupled_weight_decay, variable.dtype),
                                            variable))
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "coupled_weight_decay": self.coupled_weight_decay,
                "exempt": list(self.exempt)}


def build_optimizer(config):
    """The optimiser a TrainConfig asks for: SGD with its momentum over its learning-rate
    schedule, weight decay as `config.weight_decay_mode` says."""
    lr = schedule.learning_rate(config)
    if config.weight_decay_mode == "coupled":
        return CoupledSGD(lr, momentum=config.momentum,
                          coupled_weight_decay=config.weight_decay)
    if config.weight_decay_mode == "decoupled":
        return DecoupledSGD(lr, momentum=config.momentum,
                            weight_decay=config.weight_decay or None)
    raise ValueError(f"weight_decay_mode: {config.weight_decay_mode!r} is not one of "
                     f"{', '.join(WEIGHT_DECAY_MODES)}")
