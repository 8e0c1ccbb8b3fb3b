"""Shared training fixtures: one teacher signal extracted with a tiny teacher from the shared
synthetic dataset (tests/conftest.py), and a tiny student recipe."""

import pytest

from tests.train import tiny

EMB = 16


@pytest.fixture(scope="session")
def signal(synthetic, tmp_path_factory):
    """A teacher signal of the tiny teacher (untrained: the tests check plumbing and losses)."""
    import keras

    from tfmargin.train import TrainConfig, build_teacher, extract_teacher_signal

    tiny.register()
    keras.utils.set_random_seed(7)
    config = TrainConfig(role="teacher", backbone=tiny.NAME, embedding_size=EMB,
                         data=str(synthetic))
    teacher = build_teacher(config, num_classes=14)
    path = tmp_path_factory.mktemp("teacher") / "classifier.keras"
    teacher.model.save(path)
    return extract_teacher_signal(str(path), str(synthetic), tmp_path_factory.mktemp("s") / "sig",
                                  batch_size=32, log=None, progress=False)


@pytest.fixture
def tiny_config(synthetic, signal, tmp_path):
    """A student recipe at test size: 2 epochs of 3 steps, batch 10."""
    from tfmargin.train import TrainConfig

    tiny.register()
    return TrainConfig(backbone=tiny.NAME, embedding_size=EMB, data=str(synthetic),
                       teacher_signal=signal.directory, batch_size=10, steps=6,
                       steps_per_epoch=3, lr=0.05, lr_steps=(4,), output_dir=str(tmp_path / "run"),
                       shuffle_buffer=100, verbose=0, images_per_identity=5)
