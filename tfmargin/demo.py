"""The pipeline as far as it exists, end to end on data made on the spot.

Until the synthetic-face dataset and the training workflow land, `make demo` shows the
model core working together on learnable toy images: a larger teacher trains with ArcFace, its
class centers (the head's weights) and its embeddings of every image become the teacher signal,
and two students of the paper's architecture train on the same batches, one with the
MarginDistillationHead (frozen teacher centers, per-sample margins) and one with a trainable
ArcFace head. Nothing here is a face benchmark; the point is real losses, margins and sizes
from the library's own code.
"""

import time

import numpy as np


def toy_images(num_classes, per_class, seed, size=112):
    """Images that carry their class: a per-class random template plus per-image noise."""
    rng = np.random.default_rng(seed)
    templates = rng.uniform(-1, 1, (num_classes, size // 8, size // 8, 3))
    templates = np.repeat(np.repeat(templates, 8, axis=1), 8, axis=2)
    labels = np.repeat(np.arange(num_classes), per_class)
    images = templates[labels] + 0.5 * rng.normal(size=(len(labels), size, size, 3))
    order = rng.permutation(len(labels))
    return np.clip(images[order], -1, 1).astype("float32"), labels[order].astype("int32")


def classifier_model(backbone_name, head):
    """backbone + head, compiled with the paper's optimiser. The MD head also reads "teacher"."""
    import keras

    from tfmargin.heads import MarginDistillationHead
    from tfmargin.models import build_backbone

    image = keras.Input((112, 112, 3), name="image")
    label = keras.Input((), dtype="int32", name="label")
    teacher = keras.Input((512,), name="teacher")
    emb = build_backbone(backbone_name, name="backbone")(image)
    inputs = [emb, label, teacher] if isinstance(head, MarginDistillationHead) else [emb, label]
    model = keras.Model({"image": image, "label": label, "teacher": teacher}, head(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=5e-4),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def run(teacher="mbf", num_classes=40, per_class=8, epochs=4, teacher_epochs=4, batch_size=32,
        seed=0, log=print):
    """Returns a dict of sizes, teacher-signal statistics and both students' loss curves."""
    import keras

    from tfmargin.heads import MarginDistillationHead, MarginHead
    from tfmargin.models import build_backbone, count_macs, count_params

    keras.utils.set_random_seed(seed)
    started = time.perf_counter()
    images, labels = toy_images(num_classes, per_class, seed)
    sizes = {}
    for name in (teacher, "mobilefacenet"):
        model = build_backbone(name)
        trainable, total = count_params(model)
        sizes[name] = {"params": total, "trainable": trainable, "macs": count_macs(model)}
    x = {"image": images, "label": labels, "teacher": np.zeros((len(labels), 512), "float32")}
    log(f"training the {teacher} teacher with ArcFace for {teacher_epochs} epochs ...")
    teacher_head = MarginHead(num_classes)
    teacher_model = classifier_model(teacher, teacher_head)
    teacher_fit = teacher_model.fit(x, labels, batch_size=batch_size, epochs=teacher_epochs, verbose=0)
    # The teacher signal: its class centers and its (unflipped) embedding of every image.
    centers = keras.ops.convert_to_numpy(teacher_head.centers)
    x["teacher"] = teacher_model.get_layer("backbone").predict(images, batch_size=64, verbose=0)
    md_head = MarginDistillationHead(centers)
    students = {"margin_distillation": classifier_model("mobilefacenet", md_head),
                "arcface": classifier_model("mobilefacenet", MarginHead(num_classes))}
    teacher_emb = x["teacher"]
    margins = keras.ops.convert_to_numpy(md_head.margins(teacher_emb, labels))
    curves = {"teacher (ArcFace)": {"loss": teacher_fit.history["loss"],
                                    "accuracy": teacher_fit.history["accuracy"]}}
    for method, model in students.items():
        log(f"training the {method} student for {epochs} epochs ...")
        history = model.fit(x, labels, batch_size=batch_size, epochs=epochs, verbose=0)
        curves[method] = {"loss": history.history["loss"], "accuracy": history.history["accuracy"]}
    return {
        "sizes": sizes,
        "data": {"images": len(images), "classes": num_classes, "batch_size": batch_size,
                 "epochs": epochs, "teacher_epochs": teacher_epochs},
        "margins": {"min": float(margins.min()), "mean": float(margins.mean()),
                    "max": float(margins.max())},
        "curves": curves,
        "centers_frozen": bool(np.array_equal(keras.ops.convert_to_numpy(md_head.centers), centers)),
        "seconds": time.perf_counter() - started,
    }
