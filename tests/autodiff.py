"""Value and gradient of a keras.ops function on whichever backend the test runs."""

import keras
import numpy as np


def value_and_grads(fn, *args):
    """fn(*float32 tensors) -> scalar; returns (value, [d value / d arg])."""
    args = [np.asarray(a, np.float32) for a in args]
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf
        variables = [tf.Variable(a) for a in args]
        with tf.GradientTape() as tape:
            value = fn(*variables)
        grads = tape.gradient(value, variables)
        # a gather's gradient arrives as IndexedSlices (Partial FC's sampled centers)
        grads = [g if g is None else tf.convert_to_tensor(g) for g in grads]
        return float(value), [np.zeros_like(a) if g is None else np.asarray(g) for a, g in zip(args, grads)]
    if backend == "jax":
        import jax
        value, grads = jax.value_and_grad(fn, argnums=tuple(range(len(args))))(*args)
        return float(value), [np.asarray(g) for g in grads]
    raise NotImplementedError(backend)
