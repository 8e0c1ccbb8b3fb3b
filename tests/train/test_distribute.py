import pytest
"""MirroredStrategy over two logical CPU devices (in a subprocess: logical devices must be set
before TensorFlow starts, and must not leak into other tests)."""

import json
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from tests.train import tiny
    tiny.register()
    from tfmargin.train import TrainConfig, train, training_data, load_signal
    config = TrainConfig(**json.loads(sys.argv[1]))
    result = train(config, log=lambda *_: None)
    # The stream train() builds: each replica gets its own half batch from a shard-aware pipeline.
    mirrored = tf.distribute.MirroredStrategy()
    contexts = []
    def fn(ctx):
        contexts.append((ctx.num_input_pipelines, ctx.get_per_replica_batch_size(10)))
        return training_data(config, load_signal(config), input_context=ctx, num_classes=14)
    batch = next(iter(mirrored.distribute_datasets_from_function(fn)))
    per_replica = [int(v.shape[0]) for v in mirrored.experimental_local_results(batch[1])]
    print("RESULT" + json.dumps({
        "replicas": mirrored.num_replicas_in_sync,
        "iterations": int(result.model.optimizer.iterations.numpy()),
        "loss": result.history["loss"], "contexts": contexts, "per_replica": per_replica,
        "centers_equal": bool((result.head.centers.numpy() == load_signal(config).centers).all()),
    }))
""")


@pytest.mark.slow
def test_mirrored_on_two_logical_cpus(tiny_config):
    config = tiny_config.replace(strategy="mirrored", steps=4, steps_per_epoch=2).to_dict()
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": ROOT}
    out = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(config)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.split("RESULT", 1)[1])
    assert r["replicas"] == 2
    assert r["iterations"] == 4 and len(r["loss"]) == 2
    assert all(v == v and abs(v) < 1e6 for v in r["loss"])
    assert r["contexts"] == [[1, 5]] and r["per_replica"] == [5, 5]
    assert r["centers_equal"]


JAX_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import jax
    import keras
    from tests.train import tiny
    tiny.register()
    from tfmargin.train import TrainConfig, train
    assert len(jax.devices()) == 4, jax.devices()
    base = TrainConfig(**json.loads(sys.argv[1]))
    out = {}
    for method, strategies in (("arcface", ("default", "data_parallel", "model_parallel")),
                               ("margin_distillation", ("default", "model_parallel"))):
        runs = {}
        for strategy in strategies:
            config = base.replace(method=method, strategy=strategy,
                                  output_dir=f"{base.output_dir}-{method}-{strategy}")
            r = train(config, log=lambda *_: None)
            head = getattr(r.head, "head", r.head)
            centers = head.centers.value
            runs[strategy] = {
                "weights": [np.asarray(w) for w in r.backbone.get_weights()],
                "centers": np.asarray(centers),
                "shards": sorted({tuple(s.data.shape) for s in centers.addressable_shards}),
                "devices": len({s.device for s in centers.addressable_shards}),
                "spec": str(getattr(centers.sharding, "spec", None)),
                "loss": r.history["loss"],
            }
        ref = runs["default"]
        out[method] = {s: {
            "max_weight_diff": max(float(np.max(np.abs(a - b)))
                                   for a, b in zip(v["weights"], ref["weights"])),
            "max_weight": max(float(np.max(np.abs(b))) for b in ref["weights"]),
            "max_center_diff": float(np.max(np.abs(v["centers"] - ref["centers"]))),
            "shards": v["shards"], "devices": v["devices"], "spec": v["spec"],
            "loss": v["loss"], "ref_loss": ref["loss"]} for s, v in runs.items()}
    print("RESULT" + json.dumps(out))
""")


@pytest.fixture(scope="module")
def eight_classes(tmp_path_factory):
    """8 training identities (a multiple of 4 devices) and a tiny teacher's signal of them."""
    import keras

    from tests.train import tiny
    from tfmargin.datasets.synthetic import write_dataset
    from tfmargin.train import TrainConfig, build_teacher, extract_teacher_signal

    import warnings

    root = tmp_path_factory.mktemp("eight")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no held-out sets: none is wanted here
        write_dataset(root / "data", 8, 4, seed=3, split={"train": 1.0}, workers=1)
    tiny.register()
    keras.utils.set_random_seed(5)
    teacher = build_teacher(TrainConfig(role="teacher", backbone=tiny.NAME, embedding_size=16,
                                        data=str(root / "data")), num_classes=8)
    teacher.model.save(root / "teacher.keras")
    signal = extract_teacher_signal(str(root / "teacher.keras"), str(root / "data"),
                                    str(root / "signal"), log=None, progress=False)
    return root, signal


def test_jax_data_and_model_parallel_on_four_fake_devices(eight_classes):
    """keras.distribution on 4 XLA host devices (a subprocess: the device count is fixed when
    JAX starts): 3 steps of ArcFace and of MarginDistillation give the single device's weights,
    and under model_parallel the class centers are really split 4 ways along the class axis."""
    root, signal = eight_classes
    from tests.train import tiny
    from tfmargin.train import TrainConfig

    config = TrainConfig(backbone=tiny.NAME, embedding_size=16, data=str(root / "data"),
                         teacher_signal=signal.directory, batch_size=8, steps=3,
                         steps_per_epoch=3, lr=0.05, lr_steps=(2,), shuffle_buffer=64,
                         output_dir=str(root / "run"), verbose=0, seed=1).to_dict()
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "2",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "PYTHONPATH": ROOT,
           "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", JAX_SCRIPT, json.dumps(config)], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.split("RESULT", 1)[1])
    for method, runs in r.items():
        for strategy, v in runs.items():
            assert v["max_weight_diff"] <= 1e-4 * max(1.0, v["max_weight"]), (method, strategy, v)
            assert v["max_center_diff"] <= 1e-4, (method, strategy, v)
            assert v["loss"] == pytest.approx(v["ref_loss"], rel=1e-4)
        assert runs["default"]["shards"] == [[16, 8]] and runs["default"]["devices"] == 1
        assert runs["model_parallel"]["shards"] == [[16, 2]]  # 8 classes over 4 devices
        assert runs["model_parallel"]["devices"] == 4
        assert "batch" in runs["model_parallel"]["spec"]
    assert r["arcface"]["data_parallel"]["shards"] == [[16, 8]]  # replicated
    assert r["arcface"]["data_parallel"]["devices"] == 4
