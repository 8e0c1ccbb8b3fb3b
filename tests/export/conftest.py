"""One small trained student and one export of it in every format, shared by the export tests.

The student is MobileFaceNet (ReLU, 512-d) with one block per stage, trained for a few steps
with the MarginDistillationHead on a 20-identity x 5-image synthetic set; its teacher signal is
made up (per-class random centers, noisy embeddings around them). Everything is written once
per session: the whole directory shares one export.
"""

import numpy as np
import pytest

TRAIN_STEPS = 6
BATCH = 16


def tiny_student(activation="relu", width=1, name="backbone"):
    from tfmargin.models import mobilefacenet

    return mobilefacenet(blocks=(1, 1, 1, 1), activation=activation, width=width, name=name)


def trained_looking(model, seed=1):
    """Random weights as a trained model has them: non-zero PReLU slopes and kernels away from
    their initialisation (a fresh PReLU net outputs ~1e-7, where float noise decides cosines)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        values = [w + rng.normal(0, 0.1, w.shape).astype(w.dtype)
                  if w.ndim == 4 or "alpha" in v.path else w
                  for w, v in zip(layer.get_weights(), layer.weights)]
        if values:
            layer.set_weights(values)
    return model


def classifier(backbone, head):
    """tfmargin.train.build.classifier's layout with a given backbone, always with a teacher
    input (the demo builds full-size ones)."""
    import keras

    from tfmargin.heads import MarginDistillationHead

    image = keras.Input((112, 112, 3), name="image")
    label = keras.Input((), dtype="int32", name="label")
    teacher = keras.Input((512,), name="teacher")
    emb = backbone(image)
    inputs = [emb, label, teacher] if isinstance(head, MarginDistillationHead) else [emb, label]
    model = keras.Model({"image": image, "label": label, "teacher": teacher}, head(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


@pytest.fixture(scope="session")
def dataset(synthetic):
    """The shared synthetic dataset (tests/conftest.py)."""
    return synthetic


@pytest.fixture(scope="session")
def train_arrays(dataset):
    """(images float32 [-1, 1], labels, teacher embeddings, centers) from the training pipeline."""
    from tfmargin.data import train_dataset

    ds = train_dataset(str(dataset), BATCH, seed=0)
    images, labels = [], []
    for features, label in ds:
        images.append(features["image"].numpy())
        labels.append(label.numpy())
    images, labels = np.concatenate(images), np.concatenate(labels)
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(512, ds.num_classes)).astype(np.float32)
    teacher = (centers.T[labels] + 0.5 * rng.normal(size=(len(labels), 512))).astype(np.float32)
    return images, labels, teacher, centers


@pytest.fixture(scope="session")
def student(train_arrays):
    """The training model (backbone "backbone" + MarginDistillationHead), a few steps trained."""
    import keras

    from tfmargin.heads import MarginDistillationHead

    keras.utils.set_random_seed(7)
    images, labels, teacher, centers = train_arrays
    model = classifier(tiny_student(), MarginDistillationHead(centers))
    n = TRAIN_STEPS * BATCH
    idx = np.arange(n) % len(labels)
    model.fit({"image": images[idx], "label": labels[idx], "teacher": teacher[idx]}, labels[idx],
              batch_size=BATCH, epochs=1, verbose=0)
    return model


@pytest.fixture(scope="session")
def backbone(student):
    return student.get_layer("backbone")


@pytest.fixture(scope="session")
def held_out(dataset):
    """uint8 images of identities the student never saw (test.bin), and the pairs."""
    from tfmargin.data import load_verification_bin

    return load_verification_bin(str(dataset / "test.bin"))


@pytest.fixture(scope="session")
def exported(tmp_path_factory, student, train_arrays, dataset):
    """export_all of every format into one folder: (folder, {format: path})."""
    from tfmargin.export import export_all

    images, labels, teacher, _ = train_arrays
    out = tmp_path_factory.mktemp("export") / "student"
    paths = export_all(student, out, representative=images, num_images=32,
                       qat_data=(images, labels, teacher), qat_steps=4, qat_batch_size=BATCH,
                       test_bin=str(dataset / "test.bin"), latency_runs=5, threads=(1,),
                       card={"teacher": "made-up centers (test)", "training": {"steps": 6}},
                       threshold_set=str(dataset / "identification.npz"),
                       held_out=str(dataset / "identification.npz"), log=lambda *_: None)
    return out, paths
