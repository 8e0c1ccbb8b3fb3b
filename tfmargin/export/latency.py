"""Latency per image of an artifact: LiteRT (its default XNNPACK delegate) and onnxruntime.

Batch 1, a fixed input, `warmup` runs discarded, then the median of `runs` timed invokes
(perf_counter around invoke / run only: no copies in or out). Threads: the interpreter's
num_threads / onnxruntime's intra-op threads (inter-op 1, sequential execution).
"""

import os
import time

import numpy as np

DEFAULT_RUNS = 200
DEFAULT_WARMUP = 20


def _stats(times):
    t = np.asarray(times) * 1e3
    return {"median_ms": float(np.median(t)), "p10_ms": float(np.percentile(t, 10)),
            "p90_ms": float(np.percentile(t, 90)), "runs": len(t)}


def _timed(fn, runs, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return _stats(times)


def tflite_latency(path, threads=1, runs=DEFAULT_RUNS, warmup=DEFAULT_WARMUP, seed=0):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=os.fspath(path), num_threads=threads)
    inp = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(inp["index"], [1, *inp["shape"][1:]])
    interpreter.allocate_tensors()
    rng = np.random.default_rng(seed)
    if np.issubdtype(inp["dtype"], np.integer):
        info = np.iinfo(inp["dtype"])
        x = rng.integers(info.min, info.max, inp["shape"], endpoint=True).astype(inp["dtype"])
    else:
        x = rng.uniform(-1, 1, inp["shape"]).astype(inp["dtype"])
    interpreter.set_tensor(inp["index"], x)
    return _timed(interpreter.invoke, runs, warmup)


def onnx_latency(path, threads=1, runs=DEFAULT_RUNS, warmup=DEFAULT_WARMUP, seed=0):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    session = ort.InferenceSession(os.fspath(path), sess_options=options,
                                   providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    x = np.random.default_rng(seed).uniform(-1, 1, (1, *inp.shape[1:])).astype(np.float32)
    return _timed(lambda: session.run(None, {inp.name: x}), runs, warmup)
