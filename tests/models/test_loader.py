"""One loader: a classifier saved with a warm-up head loads in every entry point, in a process
that never imported tfmargin.train (where SoftmaxWarmup used to live)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

keras = pytest.importorskip("keras")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _backbone():
    inp = keras.Input((112, 112, 3), name="image")
    x = keras.layers.Conv2D(8, 5, strides=4, activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(16, name="embedding")(x)
    return keras.Model(inp, out, name="backbone")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from tfmargin.data import save_verification_bin
    from tfmargin.heads import ArcFace, SoftmaxWarmup

    d = tmp_path_factory.mktemp("loader")
    keras.utils.set_random_seed(3)
    backbone = _backbone()
    image = keras.Input((112, 112, 3), name="image")
    label = keras.Input((), dtype="int32", name="label")
    head = SoftmaxWarmup(ArcFace(7, scale=16.0), warmup_steps=5, ramp_steps=5)
    model = keras.Model({"image": image, "label": label},
                        head([backbone(image), label]), name="classifier")
    model.save(d / "classifier.keras")
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (8, 112, 112, 3), dtype=np.uint8)
    np.save(d / "images.npy", images)
    x = (images.astype(np.float32) - 127.5) / 127.5
    np.save(d / "want.npy", keras.ops.convert_to_numpy(backbone(x)))
    save_verification_bin(str(d / "pairs.bin"), images, np.array([True, False, True, False]))
    return d


def _python(code, cwd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                          text=True, env=env, timeout=300)


def _cli(module, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True,
                          text=True, env=env, timeout=300)


@pytest.mark.slow
def test_load_model_load_backbone_and_embed_without_tfmargin_train(saved):
    code = """
import sys, numpy as np
from tfmargin.models import load_model, load_backbone
from tfmargin.evaluate import embed
model = load_model("classifier.keras")
head = model.get_layer("softmax_warmup")
assert type(head).__name__ == "SoftmaxWarmup" and head.ramp_steps == 5, head
backbone = load_backbone("classifier.keras")
x = (np.load("images.npy").astype(np.float32) - 127.5) / 127.5
np.testing.assert_allclose(np.asarray(backbone(x)), np.load("want.npy"), rtol=1e-5, atol=1e-5)
e = embed("classifier.keras", np.load("images.npy"), flip=False)
want = np.load("want.npy"); want /= np.linalg.norm(want, axis=1, keepdims=True)
np.testing.assert_allclose(e, want, rtol=1e-4, atol=1e-5)
assert "tfmargin.train" not in sys.modules
print("ok")
"""
    proc = _python(code, saved)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


@pytest.mark.slow
def test_cli_evaluate_takes_a_warmup_classifier(saved):
    out = saved / "eval.json"
    proc = _cli("tfmargin.cli.evaluate", f"--model={saved / 'classifier.keras'}",
                f"--bins={saved / 'pairs.bin'}", "--folds=2", f"--output_json={out}",
                "--noprogress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    entry = json.loads(out.read_text())["models"][str(saved / "classifier.keras")]
    assert entry["artifact"] == "keras"


@pytest.mark.slow
def test_cli_export_takes_a_warmup_classifier(saved):
    out = saved / "export"
    proc = _cli("tfmargin.cli.export", f"--model={saved / 'classifier.keras'}",
                f"--output={out}", "--formats=tflite_fp32", "--latency_runs=0", "--noreport")
    assert proc.returncode == 0, proc.stderr[-3000:]
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(next(out.glob("*.tflite"))))
    assert tuple(interpreter.get_output_details()[0]["shape"]) == (1, 16)


def test_load_model_errors_name_the_file(tmp_path):
    from tfmargin import TfmarginError
    from tfmargin.models import load_backbone, load_model

    with pytest.raises(TfmarginError, match=f"^{tmp_path}/none.keras: model file does not exist"):
        load_model(tmp_path / "none.keras")
    (tmp_path / "bad.keras").write_bytes(b"not a zip")
    with pytest.raises(TfmarginError, match="bad.keras: cannot load the model"):
        load_backbone(tmp_path / "bad.keras")
