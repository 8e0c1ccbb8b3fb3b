"""MirroredStrategy over two logical CPU devices (in a subprocess: logical devices must be set
before TensorFlow starts, and must not leak into other tests)."""

import csv
import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

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
                               ("margin_distillation", ("default", "model_parallel")),
                               ("adadistill", ("default", "model_parallel"))):
        runs = {}
        for strategy in strategies:
            config = base.replace(method=method, strategy=strategy,
                                  output_dir=f"{base.output_dir}-{method}-{strategy}")
            r = train(config, log=lambda *_: None)
            head = getattr(r.head, "head", r.head)
            centers = head.center_rows.value  # (C, D): its sharding is the variable's
            runs[strategy] = {
                "weights": [np.asarray(w) for w in r.backbone.get_weights()],
                "centers": np.asarray(centers).T,
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
    from tfmargin.train import ConfigError
    errors = []
    for changes in ({"strategy": "data_parallel", "batch_size": 6},
                    {"strategy": "model_parallel", "method": "arcface", "num_classes": 10}):
        try:
            train(base.replace(output_dir=base.output_dir + "-refused", **changes))
        except ConfigError as e:
            errors.append(str(e))
    out["errors"] = errors
    out["refused_wrote_nothing"] = not __import__("os").path.exists(base.output_dir + "-refused")
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
    JAX starts): 3 steps of ArcFace, of MarginDistillation and of AdaDistill (whose centers
    move inside the step) give the single device's weights, and under model_parallel the class
    centers are really split 4 ways along the class axis."""
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
    assert r.pop("errors") == [
        "batch_size: 6 does not split over 4 devices",
        "strategy: model_parallel shards the 10 classes over 4 devices; the class count must "
        "be a multiple of 4"]
    assert r.pop("refused_wrote_nothing")
    for method, runs in r.items():
        for strategy, v in runs.items():
            assert v["max_weight_diff"] <= 1e-4 * max(1.0, v["max_weight"]), (method, strategy, v)
            assert v["max_center_diff"] <= 1e-4, (method, strategy, v)
            assert v["loss"] == pytest.approx(v["ref_loss"], rel=1e-4)
        assert runs["default"]["shards"] == [[8, 16]] and runs["default"]["devices"] == 1
        assert runs["model_parallel"]["shards"] == [[2, 16]]  # 8 classes over 4 devices
        assert runs["model_parallel"]["devices"] == 4
        assert "batch" in runs["model_parallel"]["spec"]
    assert r["arcface"]["data_parallel"]["shards"] == [[8, 16]]  # replicated
    assert r["arcface"]["data_parallel"]["devices"] == 4


KERAS_FIT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    import keras
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    with strategy.scope():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
    x = np.ones((8, 4), np.float32)
    ds = tf.data.Dataset.from_tensor_slices((x, x[:, :1])).batch(4)
    try:
        model.fit(ds, epochs=1, steps_per_epoch=1, verbose=0)
        print("RESULT" + json.dumps({"error": None}))
    except Exception as e:
        print("RESULT" + json.dumps({"error": f"{type(e).__name__}: {e}"[:400]}))
""")


MW_WORKER = textwrap.dedent("""
    import json, sys, time, hashlib
    import numpy as np
    import keras
    from tests.train import tiny
    tiny.register()
    from tfmargin.train import TrainConfig, train, load_signal
    from tfmargin.train.loop import training_stream
    config, dump = TrainConfig(**json.loads(sys.argv[1])), sys.argv[2]

    class Slow(keras.callbacks.Callback):  # time for the test to kill a worker mid-run
        def on_epoch_end(self, epoch, logs=None):
            if float(sys.argv[3]) < 0 and r_is_chief():  # a chief-only write fails
                raise OSError("No space left on device")
            time.sleep(abs(float(sys.argv[3])))

    def r_is_chief():
        import os
        return json.loads(os.environ["TF_CONFIG"])["task"]["index"] == 0

    r = train(config, callbacks=[Slow()])
    # what this worker's input pipeline reads: the stream train() built, from the start
    batches = iter(training_stream(config, load_signal(config), r.strategy, num_classes=14))
    seen = []
    for _ in range(3):
        for images in r.strategy.experimental_local_results(next(batches)[0]["image"]):
            seen += [hashlib.sha1(im.tobytes()).hexdigest() for im in images.numpy()]
    np.savez(dump, *r.backbone.get_weights(), *r.head.get_weights())
    print("RESULT" + json.dumps({"start_step": r.start_step, "seen": seen,
                                 "iterations": int(r.model.optimizer.iterations.numpy()),
                                 "loss": r.history["loss"], "paths": r.paths}))
""")


def _free_ports(n):
    import socket

    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _two_workers(script, args=lambda i: ()):
    """Two processes running `script` as the workers of one localhost cluster (TF_CONFIG)."""
    ports = _free_ports(2)
    procs = []
    for i in range(2):
        tf_config = {"cluster": {"worker": [f"localhost:{p}" for p in ports]},
                     "task": {"type": "worker", "index": i}}
        env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2",
               "TF_CONFIG": json.dumps(tf_config), "PYTHONPATH": ROOT}
        procs.append(subprocess.Popen([sys.executable, "-c", script, *args(i)], cwd=ROOT,
                                      env=env, text=True, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE))
    return procs


def _start_workers(config, dumps, pause):
    return _two_workers(MW_WORKER, lambda i: (json.dumps(config), str(dumps[i]), str(pause)))


def _two_jax_hosts(script, args=lambda i: (), ended=False, **env):
    """The RESULTs of two processes running `script` as the hosts of one JAX run on localhost
    (KERAS_DISTRIBUTION_* variables, CPU devices); `ended`: each one's (return code, stderr)
    instead, however it ended (a host still running after 300 s fails the test)."""
    port = _free_ports(1)[0]
    procs = []
    for i in range(2):
        host = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
                "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT, **env,
                "KERAS_DISTRIBUTION_JOB_ADDRESSES": f"localhost:{port},localhost:{port}",
                "KERAS_DISTRIBUTION_NUM_PROCESSES": "2", "KERAS_DISTRIBUTION_PROCESS_ID": str(i)}
        host.pop("XLA_FLAGS", None)
        procs.append(subprocess.Popen([sys.executable, "-c", script, *args(i)], cwd=ROOT,
                                      env=host, text=True, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE))
    if not ended:
        return _results(procs)
    try:
        errors = [p.communicate(timeout=300)[1] for p in procs]
        return [(p.returncode, e) for p, e in zip(procs, errors)]
    finally:
        _end(procs)


def _results(procs):
    out = []
    try:
        for p in procs:
            stdout, stderr = p.communicate(timeout=300)
            assert p.returncode == 0 and "RESULT" in stdout, stderr[-3000:]
            out.append(json.loads(stdout.split("RESULT", 1)[1]))
    finally:
        _end(procs)
    return out


def _end(procs):
    for p in procs:  # SIGKILL: TensorFlow's coordination service ignores SIGTERM
        if p.poll() is None:
            p.kill()
            p.wait()


def _weights(path):
    with np.load(path) as z:
        return [z[f"arr_{i}"] for i in range(len(z.files))]


@pytest.mark.slow
def test_two_multi_worker_workers_train_resume_and_agree(tiny_config, tmp_path):
    """Two MultiWorkerMirroredStrategy workers on localhost (TF_CONFIG, free ports) train
    MarginDistillation for 6 steps: each worker's input pipeline reads its own images (no
    image in both), both end with the same weights, only the chief writes the run's files.
    Then the same run in a new directory has its chief killed after the first backup; the
    same command, rerun, resumes at that backup and ends where the uninterrupted
    run ended."""
    config = tiny_config.replace(strategy="multi_worker", steps=6, steps_per_epoch=2,
                                 lr_steps=(4,))
    # the chief also selects on val.bin (a copy of the backbone outside the strategy)
    whole = config.replace(output_dir=str(tmp_path / "whole"),
                           val_bin=os.path.join(tiny_config.data, "val.bin"),
                           eval_every=6).to_dict()
    w = [tmp_path / f"whole-{i}.npz" for i in range(2)]
    chief, other = _results(_start_workers(whole, w, 0))
    assert chief["iterations"] == other["iterations"] == 6
    assert len(chief["loss"]) == 3 and all(v == v and abs(v) < 1e6 for v in chief["loss"])
    assert chief["paths"]["backbone"] == str(tmp_path / "whole" / "backbone.keras")
    assert other["paths"] == {}  # the chief's files are the run's
    assert len(chief["seen"]) == len(other["seen"]) == 3 * 5  # 3 batches of 10 / 2 workers
    assert not set(chief["seen"]) & set(other["seen"])
    a, b = _weights(w[0]), _weights(w[1])
    assert max(float(np.max(np.abs(x - y))) for x, y in zip(a, b)) == 0.0
    run = tmp_path / "whole"
    assert sorted(os.listdir(run)) == ["backbone.keras", "best.json", "best_backbone.keras",
                                       "classifier.keras", "config.json", "history.csv"]
    with open(run / "history.csv") as f:  # the backup is gone once finished
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and 0.5 <= float(rows[2]["val_accuracy"]) <= 1  # evaluated at 6
    best = json.loads((run / "best.json").read_text())
    assert best["step"] == 6 and float(rows[2]["val_accuracy"]) == pytest.approx(best["accuracy"])
    from tfmargin.models import load_model

    # the chief evaluated (on its own copy of the backbone) what both workers hold
    saved = load_model(run / "best_backbone.keras").get_weights()
    assert max(float(np.max(np.abs(x - y))) for x, y in zip(saved, a)) == 0.0

    killed = config.replace(output_dir=str(tmp_path / "killed")).to_dict()
    k = [tmp_path / f"killed-{i}.npz" for i in range(2)]
    procs = _start_workers(killed, k, 4)
    metadata = tmp_path / "killed" / "backup" / "training_metadata.json"
    try:
        deadline = time.time() + 240
        while not metadata.exists() and time.time() < deadline and procs[0].poll() is None:
            time.sleep(0.1)
        assert metadata.exists(), "no backup was written"
        procs[0].kill()  # the chief, mid-run (it sleeps after its first backup)
        procs[0].wait()
        try:  # the other worker stops at its next collective, or waits: then end it
            procs[1].wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    finally:
        _end(procs)
    assert json.loads(metadata.read_text())["epoch"] == 1
    assert not (tmp_path / "killed" / "backbone.keras").exists()
    chief, other = _results(_start_workers(killed, k, 0))
    assert chief["start_step"] == other["start_step"] == 2
    assert chief["iterations"] == other["iterations"] == 6
    resumed = _weights(k[0])
    assert max(float(np.max(np.abs(x - y))) for x, y in zip(resumed, _weights(k[1]))) == 0.0
    for x, y in zip(resumed, a):  # where the uninterrupted run ended
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)

    # a callback failing on the chief alone (its disk full) stops both, neither waits
    procs = _start_workers(config.replace(output_dir=str(tmp_path / "full")).to_dict(),
                           [tmp_path / f"full-{i}.npz" for i in range(2)], -1)
    try:
        errors = [p.communicate(timeout=240)[1] for p in procs]
    finally:
        _end(procs)
    assert [p.returncode != 0 for p in procs] == [True, True]
    assert "No space left on device" in errors[0]
    assert "a callback failed on another worker" in errors[1]
    with open(tmp_path / "killed" / "history.csv") as f:
        assert len(f.read().splitlines()) == 1 + 3  # epoch 0, then 1 and 2 after the resume
    assert not metadata.exists()


ONE_WORKER = textwrap.dedent("""
    import json, sys
    import numpy as np
    from tests.train import tiny
    tiny.register()
    from tfmargin.train import TrainConfig, train
    base, out = TrainConfig(**json.loads(sys.argv[1])), {}
    for method, extra in (("margin_distillation", {}), ("arcface", {"sample_rate": 0.5})):
        runs = {}
        for strategy in ("default", "multi_worker"):
            r = train(base.replace(method=method, strategy=strategy, **extra,
                                   output_dir=f"{base.output_dir}-{method}-{strategy}"))
            runs[strategy] = (r.history, r.backbone.get_weights() + r.head.get_weights())
        (h0, w0), (h1, w1) = runs["default"], runs["multi_worker"]
        out[method] = {"fit": h0, "loop": h1, "max_weight_diff": max(
            float(np.max(np.abs(a - b))) for a, b in zip(w0, w1))}
    print("RESULT" + json.dumps(out))
""")


@pytest.mark.slow
def test_the_multi_worker_loop_trains_as_keras_fit_does(tiny_config):
    """One worker (no TF_CONFIG): tfmargin's multi_worker loop and Keras' fit under the default
    strategy see the same batches and end with the same losses, metrics and weights, for
    MarginDistillation and for ArcFace with Partial FC."""
    config = tiny_config.replace(steps=4, steps_per_epoch=2, lr_steps=(2,)).to_dict()
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": ROOT}
    env.pop("TF_CONFIG", None)
    out = subprocess.run([sys.executable, "-c", ONE_WORKER, json.dumps(config)], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.split("RESULT", 1)[1])
    for method, v in r.items():
        assert sorted(v["fit"]) == sorted(v["loop"]), method
        for key, values in v["fit"].items():
            assert v["loop"][key] == pytest.approx(values, rel=1e-5, abs=1e-6), (method, key)
        assert v["max_weight_diff"] <= 1e-5, (method, v["max_weight_diff"])


JAX_HOST = textwrap.dedent("""
    import json, os, sys, hashlib
    import numpy as np
    from tests.train import tiny
    tiny.register()
    from tfmargin.train import TrainConfig, train, load_signal
    from tfmargin.train.loop import training_stream
    config = TrainConfig(**json.loads(sys.argv[1]))
    r = train(config, log=lambda *_: None)
    import jax
    from tfmargin.train import ConfigError
    try:
        train(config.replace(strategy="model_parallel", output_dir=config.output_dir + "-mp"))
        refused = None
    except ConfigError as e:
        refused = str(e)
    # what this host's input pipeline feeds: the stream train() built, through Keras
    built = training_stream(config, load_signal(config), r.strategy, num_classes=14)
    stream = r.strategy.distribute_dataset(built)
    images = next(iter(stream))[0]["image"]
    seen = [hashlib.sha1(np.asarray(im).tobytes()).hexdigest() for im in images.numpy()]
    head = getattr(r.head, "head", r.head)
    weights = r.backbone.get_weights() + [np.asarray(head.centers)]
    np.savez(sys.argv[2], *weights)
    print("RESULT" + json.dumps({"host": jax.process_index(), "hosts": jax.process_count(),
                                 "paths": r.paths, "loss": r.history["loss"], "seen": seen,
                                 "examples": int(built.num_examples), "as_built": stream is built,
                                 "val": r.history.get("val_accuracy"), "refused": refused}))
""")


@pytest.mark.slow
def test_jax_over_two_host_processes(tiny_config, tmp_path):
    """keras.distribution across two JAX processes on localhost (jax.distributed through the
    KERAS_DISTRIBUTION_* variables, gloo collectives on CPU), MarginDistillation under
    data_parallel with val.bin: each host reads its own shard of the source and feeds
    different images, the hosts end with the same weights and losses, process 0 alone writes
    the run's files (the other saves into a scratch directory it removes), and the validation
    accuracy it logged is what the saved best backbone scores in a single process.
    model_parallel over the two hosts is refused: Keras cannot save centers sharded across
    hosts."""
    config = tiny_config.replace(strategy="data_parallel", steps=4, steps_per_epoch=2,
                                 lr_steps=(2,), output_dir=str(tmp_path / "run"),
                                 val_bin=os.path.join(tiny_config.data, "val.bin"),
                                 eval_every=4).to_dict()
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    first, second = _two_jax_hosts(JAX_HOST, lambda i: (json.dumps(config),
                                                        str(tmp_path / f"w{i}.npz")),
                                   TMPDIR=str(scratch))
    assert (first["host"], second["host"], first["hosts"]) == (0, 1, 2)
    assert first["loss"] == pytest.approx(second["loss"], rel=1e-6)
    assert all(v == v and abs(v) < 1e6 for v in first["loss"])
    assert len(first["seen"]) == len(second["seen"]) == 5  # batch 10 over 2 hosts
    assert not set(first["seen"]) & set(second["seen"])
    # each host's pipeline reads its own shard of the source (not the whole stream, cut after)
    from tfmargin.train import TrainConfig, load_signal
    from tfmargin.train.inputs import training_data

    one = TrainConfig(**config).replace(strategy="default")
    whole = training_data(one, load_signal(one), num_classes=14).num_examples
    assert first["as_built"] and second["as_built"]
    assert 0 < first["examples"] < whole and first["examples"] + second["examples"] == whole
    a, b = _weights(tmp_path / "w0.npz"), _weights(tmp_path / "w1.npz")
    assert max(float(np.max(np.abs(x - y))) for x, y in zip(a, b)) == 0.0
    assert second["paths"] == {} and not list(scratch.iterdir())
    assert first["refused"] == second["refused"] and first["refused"].startswith(
        "strategy: model_parallel over 2 hosts is not supported")
    assert not os.path.exists(tmp_path / "run-mp")
    assert sorted(os.listdir(tmp_path / "run")) == [
        "backbone.keras", "best.json", "best_backbone.keras", "classifier.keras", "config.json",
        "history.csv"]
    from tfmargin.evaluate import evaluate_sets, load_sets
    from tfmargin.models import load_model

    best = json.loads((tmp_path / "run" / "best.json").read_text())
    assert best["step"] == 4 and first["val"][-1] == pytest.approx(best["accuracy"])
    saved = load_model(tmp_path / "run" / "best_backbone.keras")
    for x, y in zip(saved.get_weights(), a):
        np.testing.assert_array_equal(x, y)
    here = evaluate_sets(saved, load_sets({"val": config["val_bin"]}))["val"]
    assert here.accuracy == pytest.approx(best["accuracy"], abs=1e-9)


HOSTS_AGREE = textwrap.dedent("""
    import json
    import jax
    from tfmargin.train import ConfigError
    from tfmargin.train import strategy as strategies
    strategies.keras_distribution("data_parallel")  # joins the hosts (jax.distributed)
    strategies.same_on_every_host(3, "output_dir /shared: the epoch to resume at")
    try:
        strategies.same_on_every_host(jax.process_index(), "output_dir /x: the epoch to resume at")
        error = None
    except ConfigError as e:
        error = str(e)
    print("RESULT" + json.dumps({"host": jax.process_index(), "error": error}))
""")


@pytest.mark.slow
def test_jax_hosts_that_would_resume_at_different_epochs_stop(tmp_path):
    """The resume-epoch check over two JAX host processes: the same value passes; different
    values (a host that cannot see the backup) stop every host with the same error."""
    first, second = _two_jax_hosts(HOSTS_AGREE)
    assert (first["host"], second["host"]) == (0, 1)
    assert first["error"] == second["error"] == (
        "output_dir /x: the epoch to resume at: the hosts differ (0 and 1); it must be one "
        "directory that every host sees")


JAX_HOST_CALLBACK = textwrap.dedent("""
    import json, sys
    import jax, keras
    from tests.train import tiny
    tiny.register()
    from tfmargin.train import TrainConfig, train
    from tfmargin.train import strategy as strategies
    config, mode = TrainConfig(**json.loads(sys.argv[1])), sys.argv[2]
    strategies.keras_distribution("data_parallel")  # joins the hosts first

    class OnHostZero(keras.callbacks.Callback):  # on process 0 only
        def on_train_begin(self, logs=None):
            if mode == "fail_at_start" and jax.process_index() == 0:
                raise OSError("No space left on device: history.csv")

        def on_train_batch_end(self, batch, logs=None):  # at the second batch
            if batch == 1 and jax.process_index() == 0:
                if mode == "fail":
                    raise OSError("No space left on device: backup")
                if mode == "stop":
                    self.model.stop_training = True

    r = train(config, callbacks=[OnHostZero()], log=lambda *_: None)
    print("RESULT" + json.dumps({"loss": r.history["loss"]}))
""")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fail", "fail_at_start", "stop"])
def test_a_callback_on_one_jax_host_stops_every_host(tiny_config, tmp_path, mode):
    """A callback that raises on process 0 alone, at a batch's end or at the start of
    training, ends both hosts (each with an error, none waiting for the other); one that stops
    training there stops both after the same step."""
    config = tiny_config.replace(strategy="data_parallel", steps=6, steps_per_epoch=3,
                                 lr_steps=(4,), output_dir=str(tmp_path / "run")).to_dict()
    if mode == "stop":
        first, second = _two_jax_hosts(JAX_HOST_CALLBACK, lambda i: (json.dumps(config), mode))
        assert len(first["loss"]) == len(second["loss"]) == 1  # the first epoch, cut short
        assert first["loss"] == pytest.approx(second["loss"], rel=1e-6)
        return
    (rc0, err0), (rc1, err1) = _two_jax_hosts(
        JAX_HOST_CALLBACK, lambda i: (json.dumps(config), mode), ended=True)
    what = "backup" if mode == "fail" else "history.csv"
    assert rc0 and f"OSError: No space left on device: {what}" in err0, err0[-2000:]
    assert rc1 and ("RuntimeError: data_parallel: a callback failed on another host"
                    in err1), err1[-2000:]


def test_multi_worker_refuses_what_would_hang_or_not_split(tiny_config, tmp_path):
    """Refused before any strategy or file exists: mixed_float16 (its loss scaling skips a
    step on one worker alone) and inputs that cannot be split over workers."""
    from tfmargin.train import ConfigError, train
    from tfmargin.train.config import validate

    config = tiny_config.replace(strategy="multi_worker", output_dir=str(tmp_path / "r"))
    with pytest.raises(ConfigError, match="^precision: mixed_float16's loss scaling"):
        validate(config.replace(precision="mixed_float16"))
    validate(config.replace(precision="mixed_bfloat16"))
    with pytest.raises(ConfigError, match="^data: under multi_worker each worker reads"):
        train(config, data=object())
    with pytest.raises(ConfigError, match=r"^data: under multi_worker .* an \.npz feed"):
        train(config.replace(data=str(tmp_path / "faces.npz")))
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_keras_fit_still_fails_under_two_multi_worker_processes():
    """Why multi_worker has its own loop (tfmargin/train/workers.py), reproduced without
    tfmargin: two MultiWorkerMirroredStrategy workers on localhost fitting a one-layer Keras
    model fail in Keras' own fit (its pre-fit build reduces the first distributed batch; past
    that, its step reduces scalar logs along axis 0). When a Keras upgrade makes this pass,
    the loop can give way to fit."""
    for r in _results(_two_workers(KERAS_FIT)):
        # the pre-fit build's reduce of the first distributed batch, or (past it) the step's
        # reduce of scalar logs along axis 0
        assert r["error"] and ("Attempt to convert a value (PerReplica" in r["error"] or
                               "Invalid reduction dimension 0 for input with 0 dimensions"
                               in r["error"])
