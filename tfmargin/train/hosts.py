"""JAX hosts that end every batch and epoch agreed (keras.distribution over several hosts).

Keras' fit runs each host's callbacks on that host alone, and every step is a collective over
all of them: a callback that raises on one host (process 0's disk full while it writes the
backup) or stops training there would leave the others waiting in the next step for ever.
`HostsAgree` runs the run's callbacks inside one callback that, after each batch and each
epoch, agrees with the other hosts on one decision (an integer, gathered from every host):
go on, stop (any host asked), or fail (a callback raised on some host). The same rule as
`--strategy=multi_worker`'s loop (workers.py), over JAX's process collectives.
"""

import keras

from tfmargin.train import workers


def agreement():
    """agree(n) -> (min, max) of an integer over every JAX host."""
    import numpy as np
    from jax.experimental import multihost_utils

    def agree(value):
        every = np.asarray(multihost_utils.process_allgather(np.asarray(value, np.int32)))
        return int(every.min()), int(every.max())

    return agree


class HostsAgree(keras.callbacks.Callback):
    """`callbacks`, called in order as Keras' fit would, with the hosts agreeing after each
    batch and epoch: a raising callback stops every host (it re-raises its own error, the
    others say that a callback failed on another host) and a stop on one host stops all."""

    def __init__(self, callbacks, agree=None):
        super().__init__()
        self.inner = keras.callbacks.CallbackList(list(callbacks))
        self.agree = agree or agreement()

    def set_model(self, model):
        super().set_model(model)
        self.inner.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        self.inner.set_params(params)

    def on_train_begin(self, logs=None):
        self.inner.on_train_begin(logs)

    def on_epoch_begin(self, epoch, logs=None):
        self.inner.on_epoch_begin(epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        self.inner.on_train_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        workers.telling_others(self.agree, self.inner.on_train_batch_end, batch, logs)
        workers.agreed_stop(self.model, self.agree, "data_parallel", "host")

    def on_epoch_end(self, epoch, logs=None):
        workers.telling_others(self.agree, self.inner.on_epoch_end, epoch, logs)
        workers.agreed_stop(self.model, self.agree, "data_parallel", "host")

    def on_train_end(self, logs=None):
        self.inner.on_train_end(logs)
