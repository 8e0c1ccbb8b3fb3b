"""Every method builds from a TrainConfig, trains on the tiny synthetic set (through the same
data path train() uses) with a finite loss that goes down on a batch it keeps seeing, and the
MarginDistillation student's centers stay the teacher's, bit for bit."""

import keras
import numpy as np
import pytest

from tfmargin import heads
from tfmargin.train import (METHODS, ConfigError, TrainConfig, build_student, training_data,
                            validate)
from tfmargin.train.inputs import check_classes

HEAD_TYPES = {"margin_distillation": heads.MarginDistillationHead, "arcface": heads.MarginHead,
              "angular": heads.AngularDistillationHead, "triplet_l2": heads.TripletDistillationHead,
              "triplet_cos": heads.TripletDistillationHead, "margin_kd_t": heads.MarginKDHead,
              "hinton_kd": heads.HintonKDHead, "embedding": heads.EmbeddingDistillationHead,
              "arcdistill": heads.MarginDistillationHead, "arcface_init": heads.MarginHead,
              "adadistill": heads.AdaDistillHead}


@pytest.mark.parametrize("method", METHODS)
def test_method_trains(method, tiny_config, signal):
    config = validate(tiny_config.replace(method=method, lr=0.02))
    built = build_student(config, signal)
    assert type(built.head) is HEAD_TYPES[method]
    assert ("teacher" in built.model.input) == (method not in ("arcface", "arcface_init"))
    x, y = next(iter(training_data(config, signal)))
    if config.triplet:  # P x K batches: K=5 images of each of 2 identities
        labels = np.asarray(y).reshape(2, 5)
        assert (labels == labels[:, :1]).all()
    losses = [float(np.asarray(built.model.train_on_batch(x, y, return_dict=True)["loss"]))
              for _ in range(8)]
    assert np.isfinite(losses).all(), losses
    assert min(losses[-3:]) < losses[0], losses
    if method in ("margin_distillation", "arcdistill"):  # frozen: still the teacher's
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(built.head.centers),
                                      signal.centers)
    if method == "arcface_init":  # started at the teacher's, then trained
        assert not np.allclose(keras.ops.convert_to_numpy(built.head.centers), signal.centers)
    if method in ("margin_kd_t", "hinton_kd"):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(built.head.teacher_centers),
                                      signal.centers)


def test_method_defaults_match_the_paper(signal):
    c = TrainConfig()
    assert (c.m_max, c.m_min, c.scale, c.temperature, c.batch_size) == (0.5, 0.2, 64.0, 4.0, 512)
    kd = build_student(TrainConfig(method="margin_kd_t", backbone="tiny_test",
                                   embedding_size=16), signal).head
    assert (kd.temperature, kd.alpha, kd.margin) == (4.0, 0.95, 0.5)
    ang = build_student(TrainConfig(method="angular", backbone="tiny_test", embedding_size=16),
                        signal).head
    assert (ang.alpha, ang.m2) == (1.0, 0.5)


def test_config_errors_name_the_field(tiny_config, signal):
    def error(**changes):
        with pytest.raises(ConfigError) as e:
            validate(tiny_config.replace(**changes))
        return str(e.value)

    assert error(method="distill").startswith("method: 'distill' is not one of")
    assert error(data="/nope/train.rec").startswith("data: /nope/train.rec does not exist")
    assert error(lr_steps=(5, 3)).startswith("lr_steps:")
    assert error(method="triplet_l2", images_per_identity=3).startswith("images_per_identity:")
    assert error(teacher_signal="").startswith("teacher_signal: method margin_distillation needs")
    assert error(method="embedding", softmax_warmup_steps=3).startswith("softmax_warmup_steps:")
    assert error(val_bin=tiny_config.data + "/test.bin",
                 test_bins=(tiny_config.data + "/test.bin",)).startswith(
        "val_bin: ") and "reported test set" in error(
        val_bin=tiny_config.data + "/test.bin", test_bins=(tiny_config.data + "/test.bin",))
    with pytest.raises(ConfigError, match=r"^embedding_size: the student's 32-d embedding does "
                                          r"not match the teacher's 16-d"):
        build_student(tiny_config.replace(embedding_size=32), signal)
    # Labels past the teacher's classes: a signal covering fewer classes than the data.
    import dataclasses
    small = dataclasses.replace(signal, num_classes=10)
    with pytest.raises(ConfigError, match=r"^teacher_signal: the data .* has labels up to 13, "
                                          r"but the teacher's centers cover 10 classes"):
        check_classes(tiny_config, small)
    with pytest.raises(ConfigError, match=r"^num_classes: 5, but the data"):
        check_classes(tiny_config.replace(method="arcface", num_classes=5), None)


def test_adadistill_refuses_replicas():
    """Its centers update inside the step: per-replica copies would drift apart."""
    config = TrainConfig(method="adadistill", strategy="mirrored", data="d", teacher_signal="s")
    with pytest.raises(ConfigError, match="^strategy: method adadistill updates its class"):
        validate(config, check_files=False)
    validate(config.replace(strategy="default"), check_files=False)


def test_partial_fc_recipe(tiny_config, signal):
    """--sample_rate reaches the head (seeded by the recipe), trains through the data path, and
    is refused with a clear line where there is no center softmax to sample."""
    with pytest.raises(ConfigError, match=r"^sample_rate: must be in \(0, 1\]"):
        validate(tiny_config.replace(sample_rate=0.0))
    with pytest.raises(ConfigError, match="^sample_rate: method hinton_kd has no class-center"):
        validate(tiny_config.replace(method="hinton_kd", sample_rate=0.5))
    config = validate(tiny_config.replace(sample_rate=0.5, lr=0.02, seed=3,
                                          softmax_warmup_steps=2))
    built = build_student(config, signal)
    inner = built.head.head  # inside the softmax warm-up
    assert (inner.sample_rate, inner.sample_seed, inner.sample_shards) == (0.5, 3, 1)
    x, y = next(iter(training_data(config, signal)))
    losses = [float(np.asarray(built.model.train_on_batch(x, y, return_dict=True)["loss"]))
              for _ in range(6)]
    assert np.isfinite(losses).all() and min(losses[-3:]) < losses[0], losses
