"""Shared test set-up. Keras fixes its backend at first import, so the backend is chosen by the
KERAS_BACKEND environment variable of the pytest process (`make test` runs TensorFlow, then the
`backends`-marked tests again under JAX)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "backends: runs under every Keras backend (TF and JAX)")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _seed_keras():
    import keras
    keras.utils.set_random_seed(1234)
    yield
