"""Training-step throughput of the paper's student: MarginDistillation head vs ArcFace head.

Both models are the MarginDistillation student (MobileFaceNet width 1, ReLU, 512-d) over the
MS1M-ArcFace class count (85,742). The MD head's centers are frozen, so a step skips the
centers' gradient (a (512 x B) x (B x 85,742) matmul) and their SGD-momentum update over 44M
weights, which the trainable ArcFace head pays for. Timed alternately in one process.
"""

import time

import numpy as np

from benchmarks.common import result

NAME = "train_step"
DESCRIPTION = ("train step of MobileFaceNet-512 with the MarginDistillation head (frozen "
               "centers) vs a trainable ArcFace head, 85,742 classes, images/s")
MS1M_CLASSES = 85_742


def _student(head_kind, num_classes, centers):
    from tfmargin.heads import MarginDistillationHead, MarginHead
    from tfmargin.models import build_backbone
    from tfmargin.train.build import compiled_classifier

    head = (MarginDistillationHead(centers) if head_kind == "margin_distillation"
            else MarginHead(num_classes))
    # SGD 0.1, momentum 0.9, MXNet-style weight decay 5e-4: the paper's optimiser
    return compiled_classifier(build_backbone("mobilefacenet", name="backbone"), head,
                               teacher_dim=512)


def run(quick=False, batch_size=None, repeats=None, **_):
    import keras

    batch = batch_size or (4 if quick else 64)
    steps = repeats or (2 if quick else 8)
    num_classes = 500 if quick else MS1M_CLASSES
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(512, num_classes)).astype("float32")
    x = {"image": rng.uniform(-1, 1, (batch, 112, 112, 3)).astype("float32"),
         "label": rng.integers(0, num_classes, batch).astype("int32"),
         "teacher": rng.normal(size=(batch, 512)).astype("float32")}
    models = {kind: _student(kind, num_classes, centers) for kind in ("margin_distillation", "arcface")}
    inputs = {"margin_distillation": x, "arcface": {k: v for k, v in x.items() if k != "teacher"}}
    for kind, model in models.items():  # compile the step function and warm up
        for _ in range(2):
            model.train_on_batch(inputs[kind], x["label"])
    times = {kind: [] for kind in models}
    for _ in range(2):  # alternate, so drift in machine load hits both alike
        for kind, model in models.items():
            for _ in range(steps):
                start = time.perf_counter()
                model.train_on_batch(inputs[kind], x["label"])
                times[kind].append(time.perf_counter() - start)
    rate = {kind: batch / float(np.median(t)) for kind, t in times.items()}
    return result(
        NAME, subject="MarginDistillation head (frozen centers)", baseline="trainable ArcFace head",
        value=rate["margin_distillation"], baseline_value=rate["arcface"], unit="images/s",
        higher_is_better=True, goal=1.0,
        details={"batch_size": batch, "num_classes": num_classes, "timed_steps_each": 2 * steps,
                 "backend": keras.backend.backend(), "backbone": "mobilefacenet w1 relu 512"},
        command=f"python -m benchmarks.run --rows={NAME} --batch_size={batch}")
