"""JAX hosts that pass every callback hook agreed (keras.distribution over several hosts).

Keras' fit runs each host's callbacks on that host alone, and every step is a collective over
all of them: a callback that raises on one host (process 0's disk full while it writes the
backup) or stops training there would leave the others waiting in the next step for ever, or
pair their collectives with the wrong ones. `HostsAgree` runs the run's callbacks itself. A
callback that raises does not end its host at once: the host runs the other callbacks and
the same steps as every other host until the next agreement point (the start and end of
training, the start and end of each epoch, the end of each batch), where the hosts gather
one integer each (go on, stop: any host asked, or fail: a callback raised somewhere) and all
act on it. The multi_worker loop's rule (workers.py), over JAX's process collectives.
"""

import keras

from tfmargin.train import strategy as strategies
from tfmargin.train import workers

# hooks passed on without an agreement of their own (an error waits for the next one)
HOOKS = ("on_train_batch_begin", "on_test_begin", "on_test_end", "on_test_batch_begin",
         "on_test_batch_end", "on_predict_begin", "on_predict_end", "on_predict_batch_begin",
         "on_predict_batch_end")


class HostsAgree(keras.callbacks.Callback):
    """`callbacks`, each called with the same logs as Keras' fit would call it (what one adds
    to the epoch's logs reaches Keras' History), with the hosts agreeing at the start and end
    of training and of each epoch and at the end of each batch: a raising callback stops every
    host (it re-raises its own error, the others say a callback failed on another host) and a
    stop on one host stops all after the same step."""

    def __init__(self, callbacks, agree=None):
        super().__init__()
        self.callbacks = list(callbacks)
        self.agree = agree or strategies.across_hosts
        self.failure = None  # the first error since the last agreement

    def set_model(self, model):
        super().set_model(model)
        for callback in self.callbacks:
            callback.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        for callback in self.callbacks:
            callback.set_params(params)

    def _each(self, hook, *args, **kwargs):
        for callback in self.callbacks:
            try:
                getattr(callback, hook)(*args, **kwargs)
            except Exception as e:  # the rest still run: the other hosts run them too
                self.failure = self.failure or e

    def _agreed(self, stop):
        failed, self.failure = self.failure, None
        if failed is not None:
            self.agree(workers.FAILED)
            raise failed
        # self._model: Keras' `model` property would pull the whole JAX state back each step
        flag = int(self._model.stop_training) if stop else 0
        decision = workers.agreed(self.agree, flag, "data_parallel", "host")
        if stop:
            self._model.stop_training = bool(decision)

    def on_train_begin(self, logs=None):
        self._each("on_train_begin", logs)
        self._agreed(stop=False)

    def on_epoch_begin(self, epoch, logs=None):
        self._each("on_epoch_begin", epoch, logs)
        self._agreed(stop=False)

    def on_train_batch_end(self, batch, logs=None):
        self._each("on_train_batch_end", batch, logs)
        self._agreed(stop=True)

    def on_epoch_end(self, epoch, logs=None):
        self._each("on_epoch_end", epoch, logs)
        self._agreed(stop=True)

    def on_train_end(self, logs=None):
        self._each("on_train_end", logs)
        self._agreed(stop=False)


def _forward(hook):
    def call(self, *args, **kwargs):
        self._each(hook, *args, **kwargs)
    call.__name__ = hook
    return call


for _hook in HOOKS:
    setattr(HostsAgree, _hook, _forward(_hook))
