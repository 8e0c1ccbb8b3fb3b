"""train(): what it writes, validation-based selection, resumption after a kill, NaN stop."""

import csv
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tfmargin.train import ArrayFeed, TrainingDiverged, train

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _weights(model):
    return [np.asarray(w) for w in model.get_weights()]


def test_selection_keeps_the_best_validation_step(tiny_config, synthetic):
    from tfmargin.evaluate import embed, verification_from_embeddings
    from tfmargin.evaluate.sets import load_sets

    config = tiny_config.replace(steps=6, steps_per_epoch=2, eval_every=2,
                                 val_bin=str(synthetic / "val.bin"),
                                 test_bins=(str(synthetic / "test.bin"),))
    result = train(config, log=lambda *_: None)
    accs = result.history["val_accuracy"]  # the evaluations at steps 2, 4, 6
    assert len(accs) == 3 and "test_accuracy" in result.history
    best = int(np.argmax(accs))  # the first of equal maxima, as the callback keeps it
    assert result.best["step"] == 2 * (best + 1) and result.best["set"] == "val"
    assert result.best["accuracy"] == accs[best]
    with open(result.paths["best"]) as f:
        assert json.load(f) == result.best
    # history.csv, written by another callback, logged the same validation scores
    with open(result.paths["history"]) as f:
        rows = list(csv.DictReader(f))
    assert [float(r["val_accuracy"]) for r in rows] == pytest.approx(accs)
    # The saved best backbone reproduces the best validation accuracy, measured anew.
    images, issame = load_sets({"val": str(synthetic / "val.bin")})["val"]
    saved = keras.saving.load_model(result.paths["best_backbone"], compile=False)
    again = verification_from_embeddings(embed(saved, images, batch_size=64), issame)
    assert again.accuracy == pytest.approx(result.best["accuracy"])
    # Final models on disk equal the ones returned; the classifier holds the frozen centers.
    final = keras.saving.load_model(result.paths["backbone"], compile=False)
    for a, b in zip(_weights(final), _weights(result.backbone)):
        np.testing.assert_array_equal(a, b)
    classifier = keras.saving.load_model(result.paths["classifier"], compile=False)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(classifier.get_layer("head").centers),
        keras.ops.convert_to_numpy(result.head.centers))
    assert not os.path.exists(os.path.join(config.output_dir, "backup"))  # finished: no backup


class _Kill(keras.callbacks.Callback):
    """Dies at the start of the 2nd Keras epoch, after BackupAndRestore saved the 1st."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt("killed")


def test_a_killed_run_resumes_and_matches_an_uninterrupted_one(tiny_config, tmp_path):
    config = tiny_config.replace(steps=4, steps_per_epoch=2)
    whole = train(config.replace(output_dir=str(tmp_path / "whole")), log=lambda *_: None)

    resumed_dir = str(tmp_path / "resumed")
    with pytest.raises(KeyboardInterrupt):
        train(config.replace(output_dir=resumed_dir), callbacks=[_Kill()], log=lambda *_: None)
    with open(os.path.join(resumed_dir, "backup", "training_metadata.json")) as f:
        assert json.load(f)["epoch"] == 1
    lines = []
    resumed = train(config.replace(output_dir=resumed_dir), log=lines.append)
    assert resumed.start_step == 2 and "resuming" in lines[0]
    assert len(resumed.history["loss"]) == 1  # only the 2nd epoch ran in this invocation
    assert int(keras.ops.convert_to_numpy(resumed.model.optimizer.iterations)) == 4
    # Same seed, the skipped batches, the restored optimizer: the same weights, bit for bit.
    # (The tiny backbone has no concurrent ops that race; real models need --deterministic for
    # this, tested in a fresh process below.)
    for a, b in zip(_weights(whole.model), _weights(resumed.model)):
        np.testing.assert_array_equal(a, b)


def test_a_run_killed_while_saving_its_models_keeps_its_backup(tiny_config, tmp_path,
                                                                monkeypatch):
    """The backup goes only after the final models are saved: a kill while saving them leaves
    the last epoch's backup, and the rerun trains nothing and saves the same model. A staging
    directory left by a kill during a backup write is replaced, never left to pile up."""
    from tfmargin.train import loop

    config = tiny_config.replace(steps=4, steps_per_epoch=2, output_dir=str(tmp_path / "run"))
    real = loop._save_model

    def killed(model, path):
        if path.endswith("classifier.keras"):
            raise KeyboardInterrupt("killed while saving")
        return real(model, path)

    monkeypatch.setattr(loop, "_save_model", killed)
    with pytest.raises(KeyboardInterrupt):
        train(config, log=lambda *_: None)
    monkeypatch.undo()
    backup = tmp_path / "run" / "backup"
    assert json.loads((backup / "training_metadata.json").read_text())["epoch"] == 2
    saved = keras.saving.load_model(tmp_path / "run" / "backbone.keras", compile=False)
    (tmp_path / "run" / "backup.tmp").mkdir()  # a kill inside the next backup write
    again = train(config, log=lambda *_: None)
    assert again.start_step == 4 and again.history == {}  # nothing left to train
    for a, b in zip(saved.get_weights(), again.backbone.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert sorted(os.listdir(tmp_path / "run")) == ["backbone.keras", "classifier.keras",
                                                    "config.json", "history.csv"]


DETERMINISM_SCRIPT = """
import json, sys
import keras, numpy as np
from tfmargin.train.determinism import prepare
assert prepare()  # before any TensorFlow op, as the CLI does
from tfmargin.train import TrainConfig, train
config = TrainConfig.from_dict(json.loads(sys.argv[1]))

class Kill(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt("killed")

quiet = lambda *_: None
first = train(config.replace(output_dir=config.output_dir + "/a"), log=quiet)
second = train(config.replace(output_dir=config.output_dir + "/b"), log=quiet)
try:
    train(config.replace(output_dir=config.output_dir + "/c"), callbacks=[Kill()], log=quiet)
except KeyboardInterrupt:
    pass
resumed = train(config.replace(output_dir=config.output_dir + "/c"), log=quiet)
assert resumed.start_step == 2
for a, b, c in zip(first.model.get_weights(), second.model.get_weights(),
                   resumed.model.get_weights()):
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
from tensorflow.python.framework import config as tf_config
assert not tf_config.is_op_determinism_enabled()  # put back after each run
print("identical")
"""


@pytest.mark.slow
def test_deterministic_runs_are_bit_identical_and_so_is_a_resumed_one(tiny_config, tmp_path):
    """A real MobileFaceNet, batch 32: under --deterministic two runs of one config, and a run
    killed after its first epoch and resumed, end with the same weights bit for bit. (Without
    it, two processes part within a few steps on this CPU: docs/training.md.) A fresh process,
    since inter-op parallelism is fixed at TensorFlow's start."""
    config = tiny_config.replace(backbone="mobilefacenet", batch_size=32, steps=4,
                                 steps_per_epoch=2, deterministic=True, flip=False,
                                 output_dir=str(tmp_path))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-c", DETERMINISM_SCRIPT, json.dumps(config.to_dict())],
                          capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert proc.returncode == 0 and "identical" in proc.stdout, proc.stderr[-3000:]


def test_deterministic_refuses_a_running_tensorflow(tiny_config):
    from tfmargin.train import ConfigError

    import tensorflow as tf

    tf.constant(1.0) + 1.0  # the runtime is up, with its default inter-op pool
    if tf.config.threading.get_inter_op_parallelism_threads() == 1:
        pytest.skip("this process already runs one inter-op thread")
    with pytest.raises(ConfigError, match="^deterministic: TensorFlow already runs ops"):
        train(tiny_config.replace(deterministic=True), log=lambda *_: None)


def test_nan_loss_stops_with_advice(tiny_config, signal, rng):
    images = rng.integers(0, 256, (20, 112, 112, 3), dtype=np.uint8)
    teacher = rng.normal(size=(20, 16)).astype(np.float32)
    teacher[10:] = np.nan  # the 2nd batch of 10: NaN margins, NaN loss
    feed = ArrayFeed(images, np.arange(20) % 14, teacher, batch_size=10, shuffle=False)
    config = tiny_config.replace(steps=4, steps_per_epoch=2)
    with pytest.raises(TrainingDiverged) as e:
        train(config, signal=signal, data=feed, log=lambda *_: None)
    message = str(e.value)
    assert message.startswith("training diverged: the loss is nan at step 2; try lower the "
                              "learning rate (--lr=0.05 now)")
    assert "--softmax_warmup_steps" in message and "0..num_classes-1" in message
    assert "\n" not in message


def test_train_counts_and_names_corrupt_images(tiny_config, synthetic, tmp_path):
    """train() holds the stream's PipelineStats itself (a dataset attribute would not survive
    the stream's transformations), so a corrupt record is counted and named in its result and
    its log."""
    import shutil

    from tfmargin.data.recordio import RecordIOWriter
    from tfmargin.data.sources import IndexedSource

    src = IndexedSource(str(synthetic / "train.rec"))
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(synthetic / "property", bad / "property")
    with RecordIOWriter(str(bad / "train.rec"), header=True) as w:
        for i in range(len(src)):
            data, label, _ = src.read(i)
            w.write(b"not an image" if i == 3 else data, label)
    bad_key = IndexedSource(str(bad / "train.rec")).key(3)
    config = tiny_config.replace(role="teacher", teacher_signal=None, data=str(bad / "train.rec"),
                                 steps=3, steps_per_epoch=3, output_dir=str(tmp_path / "run"))
    lines = []
    result = train(config, log=lines.append)
    assert result.stats.skipped == 1
    assert result.stats.skipped_records == [f"{bad / 'train.rec'}: record {bad_key}"]
    assert any(f"record {bad_key}" in line and "skipped 1 corrupt" in line for line in lines)


def test_a_damaged_shard_is_named_not_a_tensorflow_error(tiny_config, synthetic, tmp_path):
    from tfmargin.data.convert import convert_to_tfrecord
    from tfmargin.data.tfrecord import TFRecordError

    out = tmp_path / "shards"
    convert_to_tfrecord(str(synthetic / "train.rec"), str(out), num_shards=2, seed=0,
                        progress=False)
    shard = sorted(out.glob("*.tfrecord"))[1]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    config = tiny_config.replace(role="teacher", data=str(out), teacher_signal="",
                                 output_dir=str(tmp_path / "run"), steps=2, steps_per_epoch=1)
    with pytest.raises(TFRecordError, match=rf"^{shard}: record \d+: .*corrupted record"):
        train(config, log=lambda *a: None)
