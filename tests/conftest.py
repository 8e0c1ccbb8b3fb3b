"""Shared test set-up. Keras fixes its backend at first import, so the backend is chosen by the
KERAS_BACKEND environment variable of the pytest process (`make test` runs TensorFlow, then the
`backends`-marked tests again under JAX)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import warnings  # noqa: E402

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


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory):
    """The one shared synthetic dataset of the tests (20 identities x 5 images, seed 0: 14
    training identities, val.bin, test.bin, identification.npz). Read-only: write elsewhere."""
    from tfmargin.datasets.synthetic import write_dataset

    root = tmp_path_factory.mktemp("synthetic")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the held-out sets are smaller than LFW's: expected
        write_dataset(root, 20, 5, seed=0, workers=1)
    return root
