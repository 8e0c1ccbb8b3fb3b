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
