"""MarginDistillation training steps through train() from a numpy feed (.npz -> ArrayFeed),
with no TensorFlow in the path: marked `backends`, so `make test-jax` runs it under
KERAS_BACKEND=jax (the lent GPU machines have JAX and no TensorFlow)."""

import keras
import numpy as np
import pytest

from tests.train import tiny
from tfmargin.train import TeacherSignal, TrainConfig, train


@pytest.mark.backends
def test_margin_distillation_steps_from_a_numpy_feed(tmp_path, rng):
    tiny.register()
    n, classes, dim = 24, 6, 16
    labels = np.arange(n) % classes
    centers = rng.normal(size=(dim, classes))
    centers = (centers / np.linalg.norm(centers, axis=0)).astype(np.float32)
    teacher = (centers.T[labels] + 0.3 * rng.normal(size=(n, dim))).astype(np.float32)
    images = rng.integers(0, 256, (n, 112, 112, 3), dtype=np.uint8)
    data = tmp_path / "train.npz"
    np.savez(data, image=images, label=labels, teacher=teacher)
    signal = TeacherSignal(directory=str(tmp_path), centers=centers, files=[], manifest={},
                           embedding_size=dim, num_classes=classes, num_images=n, flip=False)
    config = TrainConfig(backbone=tiny.NAME, embedding_size=dim, data=str(data), batch_size=8,
                         steps=4, steps_per_epoch=2, lr=0.05, lr_steps=(3,),
                         softmax_warmup_steps=1, output_dir=str(tmp_path / "run"), verbose=0)
    result = train(config, signal=signal, log=lambda *_: None)
    assert np.isfinite(result.history["loss"]).all() and len(result.history["loss"]) == 2
    assert int(keras.ops.convert_to_numpy(result.model.optimizer.iterations)) == 4
    head = result.head.head  # inside the softmax warm-up
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(head.centers), centers)
    saved = keras.saving.load_model(result.paths["backbone"], compile=False)
    x = (images[:4].astype(np.float32) - 127.5) / 127.5
    np.testing.assert_allclose(keras.ops.convert_to_numpy(saved(x)),
                               keras.ops.convert_to_numpy(result.backbone(x)), atol=1e-5)
    assert keras.backend.backend() in ("tensorflow", "jax")
