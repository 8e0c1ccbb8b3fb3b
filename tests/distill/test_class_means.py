"""A teacher that never saw the student's identities: centers='class_means' builds each class's
center from the teacher's embeddings (checked against a numpy mean of the stored embeddings,
read back by another path), and AdaDistill trains from such a signal."""

import numpy as np
import pytest

from tests.train import tiny
from tfmargin.distill import TeacherSignalError, extract_teacher_signal, load_teacher_signal


@pytest.fixture(scope="module")
def other_teacher(tmp_path_factory):
    """A tiny classifier of 5 identities that are not the synthetic set's 14."""
    import keras

    from tfmargin.train import TrainConfig, build_teacher

    tiny.register()
    keras.utils.set_random_seed(11)
    built = build_teacher(TrainConfig(role="teacher", backbone=tiny.NAME, embedding_size=16,
                                      data="unused"), num_classes=5)
    path = tmp_path_factory.mktemp("other") / "classifier.keras"
    built.model.save(path)
    return path


def _stored(sig):
    import tensorflow as tf

    labels, teacher = [], []
    for path in sig.files:
        for raw in tf.data.TFRecordDataset(path):
            f = tf.train.Example.FromString(raw.numpy()).features.feature
            labels.append(f["label"].int64_list.value[0])
            teacher.append(list(f["teacher"].float_list.value))
    return np.array(labels), np.array(teacher, np.float64)


def test_class_mean_centers(synthetic, other_teacher, tmp_path):
    with pytest.raises(TeacherSignalError, match="has 14 classes but the teacher's centers"):
        extract_teacher_signal(str(other_teacher), str(synthetic), tmp_path / "head", log=None,
                               progress=False)  # its head is for other identities
    sig = extract_teacher_signal(str(other_teacher), str(synthetic), tmp_path / "sig",
                                 centers="class_means", shuffle=True, log=None, progress=False)
    assert (sig.num_classes, sig.embedding_size) == (14, 16)
    assert sig.manifest["centers"]["from"] == "class means of the teacher's embeddings"
    labels, teacher = _stored(sig)
    unit = teacher / np.linalg.norm(teacher, axis=1, keepdims=True)
    for c in range(14):
        mean = unit[labels == c].mean(axis=0)
        np.testing.assert_allclose(sig.centers[:, c], mean / np.linalg.norm(mean), atol=1e-6)
    again = load_teacher_signal(sig.directory, dataset=str(synthetic), teacher=str(other_teacher))
    np.testing.assert_array_equal(again.centers, sig.centers)


def test_adadistill_trains_from_class_means(synthetic, other_teacher, tmp_path):
    from tfmargin.train import TrainConfig, train

    sig = extract_teacher_signal(str(other_teacher), str(synthetic), tmp_path / "sig",
                                 centers="class_means", shuffle=True, log=None, progress=False)
    config = TrainConfig(method="adadistill", backbone=tiny.NAME, embedding_size=16,
                         data=str(synthetic), teacher_signal=sig.directory, batch_size=10,
                         steps=2, steps_per_epoch=1, lr=0.05, lr_steps=(1,),
                         output_dir=str(tmp_path / "run"), shuffle_buffer=100, verbose=0)
    result = train(config, log=lambda *a: None)
    centers = result.head.centers.numpy()
    assert centers.shape == (16, 14) and np.isfinite(centers).all()
    assert np.isfinite(result.history["loss"]).all()


def test_a_class_without_images_is_named():
    from tfmargin.distill.extract import _class_means

    sums = np.ones((4, 3))
    sums[2] = 0
    with pytest.raises(TeacherSignalError, match="data.rec: class 2 has no images"):
        _class_means(sums, "data.rec")
