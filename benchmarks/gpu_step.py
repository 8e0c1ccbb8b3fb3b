"""The GPU check: tfmargin's JAX train step at arcface_torch's `mbf` shape, for a machine with
JAX (and PyTorch) but no TensorFlow. Run by benchmarks/gpu_step.sh (BUILD.md, "Training on a
GPU"); tested on CPU at tiny size (tests/benchmarks/test_gpu_step.py).

    KERAS_BACKEND=jax python -m benchmarks.gpu_step --output=gpu_step.json
    KERAS_BACKEND=jax python -m benchmarks.gpu_step --quick          # tiny, any CPU

Three steps of one shape (MobileFaceNet, 512-d, batch 512, 85,742 classes = MS1M-ArcFace,
mixed bfloat16, the paper's SGD): ArcFace over every class, ArcFace with Partial FC at
sample_rate 0.1, and the paper's student with the MarginDistillation head (frozen centers).
Each is timed over `--steps` jitted steps on device-resident batches after a warm-up (the
compile), and reported as images/s with the device's name. No TensorFlow is imported: the
models, heads and optimiser are Keras 3 on JAX.
"""

import argparse
import json
import os
import sys
import time

MBF = {"batch": 512, "classes": 85_742, "backbone": "mobilefacenet", "embedding": 512,
       "backbone_kwargs": {}}
# the code path at a size a shared CPU compiles in seconds: one block per stage, 64-d
QUICK = {"batch": 8, "classes": 64, "backbone": "mobilefacenet", "embedding": 64,
         "backbone_kwargs": {"blocks": [1, 1, 1, 1]}}


def _arrays(shape, rng):
    b, c, d = shape["batch"], shape["classes"], shape["embedding"]
    return {"image": rng.uniform(-1, 1, (b, 112, 112, 3)).astype("float32"),
            "label": rng.integers(0, c, b).astype("int32"),
            "teacher": rng.normal(size=(b, d)).astype("float32")}


def measure(kind, shape, steps, precision):
    """images/s of `steps` train steps of one configuration, after one warm-up step."""
    import jax
    import keras
    import numpy as np

    from tfmargin.heads import ArcFace, MarginDistillationHead
    from tfmargin.models import build_backbone
    from tfmargin.train.build import compiled_classifier, precision as policy
    from tfmargin.train.config import TrainConfig

    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    c, d = shape["classes"], shape["embedding"]
    with policy(precision):
        backbone = build_backbone(shape["backbone"], embedding_size=d, name="backbone",
                                  **shape["backbone_kwargs"])
        if kind == "margin_distillation":
            centers = rng.normal(size=(d, c)).astype("float32")
            head = MarginDistillationHead(centers, name="head")
        else:
            head = ArcFace(c, name="head", sample_rate=0.1 if kind == "arcface_pfc" else 1.0,
                           sample_seed=0)
        model = compiled_classifier(backbone, head, TrainConfig(),
                                    teacher_dim=d if kind == "margin_distillation" else None)
    data = _arrays(shape, rng)
    if kind != "margin_distillation":
        data.pop("teacher")
    x = {k: jax.device_put(v) for k, v in data.items()}  # resident: time the step, not copies
    y = x["label"]
    model.train_on_batch(x, y)  # compile
    jax.block_until_ready(model.trainable_variables[0].value)
    start = time.perf_counter()
    for _ in range(steps):
        logs = model.train_on_batch(x, y, return_dict=True)
    jax.block_until_ready(model.trainable_variables[0].value)
    seconds = time.perf_counter() - start
    return {"images_per_s": shape["batch"] * steps / seconds, "seconds": seconds,
            "steps": steps, "final_loss": float(logs["loss"])}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny shape (CPU check)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per config")
    parser.add_argument("--output", default=None, help="write the JSON here too")
    parser.add_argument("--precision", default=None,
                        help="dtype policy (default mixed_bfloat16; quick: float32)")
    args = parser.parse_args(argv)
    import keras

    if keras.backend.backend() != "jax":
        parser.error("run with KERAS_BACKEND=jax")
    import jax

    shape = QUICK if args.quick else MBF
    steps = args.steps or (2 if args.quick else 20)
    precision = args.precision or ("float32" if args.quick else "mixed_bfloat16")
    out = {"device": str(jax.devices()[0].device_kind), "devices": len(jax.devices()),
           "jax": jax.__version__, "keras": keras.__version__, "shape": shape,
           "precision": precision, "tensorflow_imported": sys.modules.get("tensorflow") is not None,
           "results": {}}
    for kind in ("arcface", "arcface_pfc", "margin_distillation"):
        out["results"][kind] = measure(kind, shape, steps, precision)
        print(f"{kind}: {out['results'][kind]['images_per_s']:.1f} images/s", flush=True)
    r = out["results"]
    out["pfc_speedup"] = r["arcface_pfc"]["images_per_s"] / r["arcface"]["images_per_s"]
    out["tensorflow_imported"] = sys.modules.get("tensorflow") is not None
    text = json.dumps(out, indent=2)
    print(text)
    if args.output:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(args.output, "w") as f:
            f.write(text + "\n")
    return out


if __name__ == "__main__":
    main()
