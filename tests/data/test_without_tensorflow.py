"""The lent GPU machines run Keras on JAX and have no TensorFlow: .rec / .bin files must still
read there (Pillow decodes) and the calibration must train from an in-memory feed."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # subprocesses that import every reader without TensorFlow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Runs in a fresh interpreter where `import tensorflow` fails, as on the GPU hosts.
SCRIPT = r"""
import json, sys
sys.modules["tensorflow"] = None
import numpy as np
data, out = sys.argv[1], sys.argv[2]
from tfmargin.data import images
assert images.tf is None
from tfmargin.data.feed import load_rec_arrays
from tfmargin.data.verification_bin import load_verification_bin
rec_images, rec_labels = load_rec_arrays(data + "/train.rec")
bin_images, issame = load_verification_bin(data + "/test.bin")
np.savez(out + "/decoded.npz", rec_images=rec_images, rec_labels=rec_labels,
         bin_images=bin_images, issame=issame)
from tests.train import tiny
tiny.register()
from examples.calibrate_synthetic.calibrate import calibrate
report = calibrate(data, larger="tiny_test", smaller="tiny_test", steps=2, batch_size=8,
                   save_dir=out + "/models", log=lambda *a: None)
print(json.dumps({"feed": report["feed"], "backend": report["backend"],
                  "test": report["tiny_test"]["test"]["accuracy"],
                  "steps": report["tiny_test"]["steps"]}))
"""


@pytest.fixture(scope="module")
def no_tf_run(tmp_path_factory):
    from tfmargin.datasets.synthetic import write_dataset

    data = tmp_path_factory.mktemp("synthetic")
    out = tmp_path_factory.mktemp("out")
    with pytest.warns(Warning):
        write_dataset(data, 12, 4, seed=3)
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(data), str(out)], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return data, out, json.loads(proc.stdout.strip().splitlines()[-1])


def _close(a, b):
    # Pillow and TensorFlow both use libjpeg(-turbo) but upsample chroma differently: about one
    # grey level apart on average, never a different picture.
    a, b = a.astype(np.float64), b.astype(np.float64)
    assert np.abs(a - b).mean() < 2.0
    for x, y in zip(a.reshape(len(a), -1), b.reshape(len(b), -1)):
        assert np.corrcoef(x, y)[0, 1] > 0.99


def test_rec_and_bin_decode_with_pillow_like_tensorflow(no_tf_run):
    from tfmargin.data.images import decode_image
    from tfmargin.data.recordio import RecordIO
    from tfmargin.data.verification_bin import load_verification_bin

    data, out, _ = no_tf_run
    got = np.load(out / "decoded.npz")
    with RecordIO(str(data / "train.rec")) as reader:
        records = [reader.read(int(k)) for k in reader.keys()]
    expected = np.stack([decode_image(r.image) for r in records])
    np.testing.assert_array_equal(got["rec_labels"], [r.label for r in records])
    assert got["rec_images"].shape == expected.shape
    _close(got["rec_images"], expected)
    bin_images, issame = load_verification_bin(data / "test.bin")
    np.testing.assert_array_equal(got["issame"], issame)
    _close(got["bin_images"], bin_images)


def test_calibration_trains_on_jax_from_the_numpy_feed(no_tf_run):
    _, out, report = no_tf_run
    assert report["feed"] == "numpy" and report["backend"] == "jax"
    assert report["steps"] == 2 and 0.0 <= report["test"] <= 1.0
    assert (out / "models" / "tiny_test.keras").is_file()
