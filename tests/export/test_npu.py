"""NPU readiness: the report's op rows against LiteRT's own reading of the file, the verdicts
against the published lists (NNAPI delegate source, Coral's Edge TPU table), and the limits
that the file itself shows (dilation, padding axes, dynamic shapes)."""

import json
import os

import numpy as np
import pytest

# Published facts the verdicts must agree with (see tfmargin/export/npu_ops.py for sources).
NOT_ON_EDGE_TPU = {"SHAPE", "DEQUANTIZE", "BATCH_MATMUL", "GATHER"}
NOT_IN_NNAPI = {"SHAPE", "BATCH_MATMUL"}
NNAPI_INT8_CONV_API = 29  # int8 CONV_2D / FULLY_CONNECTED are refused below NNAPI 1.2


def _litert_ops(path):
    """(op names in execution order, {tensor index: shape signature}, [op output indices]) as
    LiteRT reads them."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    details = sorted(it._get_ops_details(), key=lambda d: d["index"])
    shapes = {d["index"]: list(d.get("shape_signature", d["shape"]))
              for d in it.get_tensor_details()}
    return [d["op_name"] for d in details], shapes, [list(d["outputs"]) for d in details]


def _report(exported):
    folder, paths = exported
    return json.load(open(os.path.join(folder, "report.json")))["artifacts"], paths


def test_integer_io_file_is_static_and_ready_for_both(exported):
    arts, paths = _report(exported)
    r = arts["tflite_int8_io"]["npu"]
    ops, shapes, _ = _litert_ops(paths["tflite_int8_io"])
    assert all(-1 not in s for s in shapes.values())  # the NPU file has a fixed batch
    assert r["file"]["static_shapes"] and r["file"]["integer_io"] and r["file"]["full_integer"]
    for target in ("nnapi", "edgetpu"):
        rows = {row["op"]: row["count"] for row in r["targets"][target]["ops"]}
        assert rows == {op: ops.count(op) for op in set(ops)}
    assert not set(ops) & (NOT_ON_EDGE_TPU | NOT_IN_NNAPI)
    tpu, nn = r["targets"]["edgetpu"], r["targets"]["nnapi"]
    assert tpu["ready"] and tpu["blockers"] == []
    assert tpu["mapped"] == {"ops": len(ops), "of": len(ops), "first_cpu_op": None}
    assert nn["ready"] and nn["min_api"] == NNAPI_INT8_CONV_API
    assert nn["min_android"] == "Android 10 (API 29)"


def test_dynamic_batch_file_names_what_stops_each_target(exported):
    arts, paths = _report(exported)
    r = arts["tflite_int8"]["npu"]  # float I/O, dynamic batch
    ops, shapes, outputs = _litert_ops(paths["tflite_int8"])
    assert any(-1 in s for s in shapes.values()) and not r["file"]["static_shapes"]
    # the compiler stops at the first op it does not list or whose tensors are not static
    first = next(i for i, op in enumerate(ops)
                 if op in NOT_ON_EDGE_TPU or any(-1 in shapes[t] for t in outputs[i]))
    tpu = r["targets"]["edgetpu"]
    assert tpu["mapped"] == {"ops": first, "of": len(ops), "first_cpu_op": ops[first]}
    assert not tpu["ready"] and any("dynamic shape" in b for b in tpu["blockers"])
    status = {row["op"]: row["status"] for row in tpu["ops"]}
    assert {op for op, s in status.items() if s == "not supported"} == set(ops) & NOT_ON_EDGE_TPU
    nn = {row["op"]: row for row in r["targets"]["nnapi"]["ops"]}
    assert nn["SHAPE"]["status"] == "not supported"
    assert nn["RESHAPE"]["status"] == "limit not met"  # its new shape comes from SHAPE
    assert nn["QUANTIZE"]["min_api"] == 30  # float -> int8 QUANTIZE needs NNAPI 1.3


def test_report_markdown_lists_every_op_for_both_targets(exported):
    folder, paths = exported
    md = open(os.path.join(folder, "report.md")).read()
    section = md.split("## NPU readiness", 1)[1]
    ops, _, _ = _litert_ops(paths["tflite_int8_io"])
    block = section.split("**tflite_int8_io**", 1)[1].split("**", 1)[0]
    for op in set(ops):
        assert f"| {op} | {ops.count(op)} | yes" in block
    assert "Edge TPU: ready" in block and "NNAPI: ready from Android 10 (API 29)" in block


def _int8_file(tmp_path, build, name):
    """A full-integer, integer-I/O, batch-1 file of a one-layer model on 16x16 inputs, through
    the exporter's own SavedModel and converter settings."""
    import keras

    from tfmargin.export import graph
    from tfmargin.export.tflite import _converter, convert

    inp = keras.Input((16, 16, 3))
    model = keras.Model(inp, build(inp))
    images = np.random.default_rng(0).uniform(-1, 1, (16, 16, 16, 3)).astype(np.float32)
    archive = graph.write_archive(model, str(tmp_path / name), "float32", normalize=False,
                                  batch_size=1)
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(convert(_converter(archive, "int8", images, "int8", batch_size=1),
                             str(path)))
    return path


@pytest.mark.parametrize("case", ["dilation", "batch_padding"])
def test_limits_the_file_shows(tmp_path, case):
    """A plain convolution, then a layer whose limit the file shows broken: the Edge TPU maps
    the first op and stops at the second."""
    import keras
    import tensorflow as tf

    from tfmargin.export.npu import npu_readiness

    if case == "dilation":
        layer = keras.layers.Conv2D(8, 3, dilation_rate=(2, 1))
        op, text = "CONV_2D", "dilation 2x1"
    else:
        layer = keras.layers.Lambda(lambda t: tf.pad(t, [[1, 0], [0, 0], [0, 0], [0, 0]]))
        op, text = "PAD", "paddings [[1, 0], [0, 0], [0, 0], [0, 0]]"
    path = _int8_file(tmp_path, lambda x: layer(keras.layers.Conv2D(4, 3)(x)), case)
    ops, _, _ = _litert_ops(path)
    assert ops[0] == "CONV_2D" and ops[1] == op
    r = npu_readiness(path)
    row = next(row for row in r["targets"]["edgetpu"]["ops"] if row["op"] == op)
    assert row["status"] == "limit not met" and text in row["detail"]
    assert not r["targets"]["edgetpu"]["ready"]
    assert r["targets"]["edgetpu"]["mapped"] == {"ops": 1, "of": len(ops), "first_cpu_op": op}


def test_a_flatten_converts_at_a_fixed_batch_and_maps(tmp_path):
    """IResNet's head flattens 7x7xC: calibration must feed the fixed batch the graph has."""
    import keras

    from tfmargin.export.npu import npu_readiness

    path = _int8_file(tmp_path, lambda x: keras.layers.Dense(4)(keras.layers.Flatten()(
        keras.layers.Conv2D(8, 3, strides=2)(x))), "flatten")
    ops, shapes, _ = _litert_ops(path)
    assert all(-1 not in s for s in shapes.values()) and "FULLY_CONNECTED" in ops
    r = npu_readiness(path)
    assert r["targets"]["edgetpu"]["mapped"]["first_cpu_op"] in (None, "RESHAPE")
    assert r["targets"]["nnapi"]["ready"], r["targets"]["nnapi"]["blockers"]
