"""Setting the fake-quant activation ranges from real batches (tfmot starts them at +-6)."""

import numpy as np

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
