"""VerificationCallback during model.fit: evaluations, logs, TensorBoard, best weights.
Marked `backends`: also run under KERAS_BACKEND=jax (fit keeps weights outside the variables)."""

import glob
import os

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from tfmargin.evaluate import VerificationCallback, embed, verification_from_embeddings  # noqa


def _backbone():
    inp = keras.Input((112, 112, 3))
    x = keras.layers.Conv2D(8, 5, strides=4, activation="relu")(inp)
    x = keras.layers.Conv2D(16, 3, strides=4, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(16)(x), name="backbone")


def _pairs(rng, n):
    base = rng.integers(0, 256, (n, 112, 112, 3)).astype(np.int16)
    issame = np.arange(n) % 2 == 0
    other = np.where(issame[:, None, None, None],
                     base + rng.integers(-40, 40, base.shape),
                     rng.integers(0, 256, base.shape))
    images = np.stack([base, other], axis=1).reshape(2 * n, 112, 112, 3)
    return np.clip(images, 0, 255).astype(np.uint8), issame


class _FinalWeights(keras.callbacks.Callback):
    def on_train_end(self, logs=None):
        self.weights = [w.copy() for w in self.model.get_weights()]


@pytest.mark.backends
def test_callback_evaluates_logs_and_keeps_the_best(rng, tmp_path):
    from tfmargin.data import save_verification_bin
    from tfmargin.data.verification_bin import load_verification_bin

    val = _pairs(rng, 20)
    test_bin = str(tmp_path / "test.bin")
    save_verification_bin(test_bin, *_pairs(rng, 20))

    backbone = _backbone()
    logits = keras.layers.Dense(4)(backbone.output)
    model = keras.Model(backbone.input, logits)
    model.compile(optimizer=keras.optimizers.SGD(0.5),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = rng.integers(0, 256, (32, 112, 112, 3)).astype(np.float32) / 127.5 - 1
    y = rng.integers(0, 4, 32)

    best_path = str(tmp_path / "best" / "backbone.keras")
    log_dir = str(tmp_path / "logs")
    cb = VerificationCallback({"val": val, "test": test_bin}, every_n_steps=3, select_on="val",
                              embedding_model=backbone, batch_size=16, folds=5,
                              log_dir=log_dir, best_path=best_path, verbose=0)
    final = _FinalWeights()
    fit = model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[final, cb])

    # 8 steps: evaluations after steps 3 and 6 (and none at epoch ends: every_n_steps is set).
    assert [h["step"] for h in cb.history] == [3, 6]
    accs = [h["results"]["val"].accuracy for h in cb.history]
    # The epoch logs carry the latest evaluation: step 3 for epoch 1, step 6 for epoch 2.
    assert fit.history["val_accuracy"] == accs
    assert fit.history["test_accuracy"] == [h["results"]["test"].accuracy for h in cb.history]
    assert "val_tar_at_far_0.1" in fit.history

    assert cb.best_accuracy == max(accs)
    assert cb.best_step == [3, 6][int(np.argmax(accs))]
    # Restored weights give the best accuracy again, measured independently of the callback.
    images, issame = val
    again = verification_from_embeddings(embed(backbone, images, batch_size=16), issame, folds=5)
    assert again.accuracy == cb.best_accuracy
    saved = keras.saving.load_model(best_path, compile=False)
    from_disk = verification_from_embeddings(embed(saved, images), issame, folds=5)
    assert from_disk.accuracy == cb.best_accuracy
    # Steps 7 and 8 ran after the last evaluation: what was restored is not the final state.
    restored = model.get_weights()
    assert not all(np.array_equal(a, b) for a, b in zip(final.weights, restored))
    # The .bin set is the same data the data module reads.
    test_images, _ = load_verification_bin(test_bin)
    np.testing.assert_array_equal(cb.sets["test"][0], test_images)

    # TensorBoard scalars under <log_dir>/verification, one per evaluation step.
    events = glob.glob(os.path.join(log_dir, "verification", "events.out.tfevents.*"))
    assert events
    steps = {}
    for path in events:
        for event in tf.compat.v1.train.summary_iterator(path):
            for v in event.summary.value:
                steps.setdefault(v.tag, []).append(event.step)
    assert steps["val/accuracy"] == [3, 6] and steps["test/tar_at_far_0.1"] == [3, 6]


@pytest.mark.backends
def test_epoch_end_evaluation_and_errors(rng):
    val = _pairs(rng, 10)
    model = _backbone()
    model.compile(optimizer="sgd", loss="mse")
    cb = VerificationCallback({"val": val}, select_on="val", folds=2, verbose=0,
                              restore_best=False)
    model.fit(rng.random((8, 112, 112, 3)).astype(np.float32), np.zeros((8, 16)), batch_size=4,
              epochs=2, verbose=0, callbacks=[cb])
    assert [h["step"] for h in cb.history] == [2, 4]
    with pytest.raises(ValueError, match=r"select_on='lfw' is not one of the sets \['val'\]"):
        VerificationCallback({"val": val}, select_on="lfw")
    with pytest.raises(ValueError, match="must end with .keras or .weights.h5"):
        VerificationCallback({"val": val}, best_path="best.h5")
    with pytest.raises(FileNotFoundError, match="nothere.bin does not exist"):
        VerificationCallback("nothere.bin")
