"""Learning-rate schedules against their closed forms, evaluated in float64 numpy."""

import math

import keras
import numpy as np
import pytest

from tfmargin.train import TrainConfig, learning_rate, optimizer
from tfmargin.train.schedule import WarmupSchedule


def _values(schedule, steps):
    return np.array([float(keras.ops.convert_to_numpy(schedule(s))) for s in steps])


def test_piecewise_divides_at_the_given_steps():
    steps = [0, 1, 99_999, 100_000, 100_001, 159_999, 160_000, 219_999, 220_000, 300_000]
    got = _values(learning_rate(TrainConfig()), steps)
    want = [0.1 * 0.1 ** sum(s >= b for b in (100_000, 160_000, 220_000)) for s in steps]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert got[3] == pytest.approx(0.01) and got[2] == pytest.approx(0.1)


def test_cosine_with_linear_warmup():
    c = TrainConfig(lr_schedule="cosine", lr=0.4, steps=1000, lr_warmup_steps=100, min_lr=0.004)
    steps = [0, 1, 50, 99, 100, 101, 400, 550, 999, 1000, 5000]

    def closed(s):
        t = min(max((s - 100) / 900, 0.0), 1.0)
        rate = 0.004 + (0.4 - 0.004) * 0.5 * (1 + math.cos(math.pi * t))
        return rate * min(s / 100, 1.0)

    np.testing.assert_allclose(_values(learning_rate(c), steps), [closed(s) for s in steps],
                               rtol=1e-5, atol=1e-9)


def test_piecewise_with_warmup_and_serialisation():
    s = WarmupSchedule("piecewise", 0.2, boundaries=[10], factor=0.5, warmup_steps=4)
    np.testing.assert_allclose(_values(s, [0, 2, 4, 9, 10, 11]),
                               [0.0, 0.1, 0.2, 0.2, 0.1, 0.1], rtol=1e-6)
    again = WarmupSchedule.from_config(s.get_config())
    np.testing.assert_allclose(_values(again, [3, 12]), _values(s, [3, 12]))


def test_optimizer_is_the_papers_sgd():
    opt = optimizer(TrainConfig())
    assert isinstance(opt, keras.optimizers.SGD)
    assert opt.momentum == 0.9 and opt.coupled_weight_decay == pytest.approx(5e-4)
    assert not opt.weight_decay  # Keras' decoupled decay stays off: MXNet's rule instead
