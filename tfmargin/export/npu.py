"""NPU readiness of a full-integer TFLite file: its ops and tensors against what Android's
NNAPI delegate and the Edge TPU compiler publish that they accept.

    npu_readiness("savedmodels/s/tflite_int8_io.tflite")["targets"]["edgetpu"]["ready"]

Neither compiler runs here (NNAPI needs an Android device, edgetpu_compiler is a Debian package
outside PyPI), so this is a static check of the file against the published op lists and the
limits each one states, evaluated where the file holds what they talk about (constant padding,
dilations, fused activations, reduction axes, static shapes, tensor types). What a target lists
with a limit that the file cannot show is reported as "check on device", never as met. The
tables are in npu_ops.py with their sources.
"""

import collections
import os

from tfmargin.export.npu_ops import EDGE_TPU, EDGE_TPU_SOURCE, NNAPI, NNAPI_SOURCE, android_name

INTEGER_TYPES = ("INT8", "UINT8")
QUANT_PARAM_TYPES = ("INT32", "INT64")  # biases and shape constants of an integer graph


class _File:
    """The parts of a .tflite flatbuffer the checks read (LiteRT's schema, object API)."""

    def __init__(self, data):
        from ai_edge_litert import schema_py_generated as schema

        self.schema = schema
        self.model = schema.ModelT.InitFromPackedBuf(data, 0)
        self.graph = self.model.subgraphs[0]
        names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        self.type_names = {v: k for k, v in vars(schema.TensorType).items()
                           if not k.startswith("_")}
        self.codes = []
        for c in self.model.operatorCodes:
            op = max(c.builtinCode, c.deprecatedBuiltinCode)
            self.codes.append((c.customCode or b"?").decode() if op == schema.BuiltinOperator.CUSTOM
                              else names.get(op, f"BUILTIN_{op}"))

    def ops(self):
        """[(name, version, operator)] in execution order."""
        return [(self.codes[o.opcodeIndex], self.model.operatorCodes[o.opcodeIndex].version, o)
                for o in self.graph.operators]

    def tensor(self, i):
        return self.graph.tensors[i]

    def dtype(self, i):
        return self.type_names[self.tensor(i).type]

    def shape(self, i):
        t = self.tensor(i)
        sig = t.shapeSignature if t.shapeSignature is not None else t.shape
        return [int(d) for d in (sig if sig is not None else [])]

    def constant(self, i):
        """The value of a constant input tensor as a numpy array, or None."""
        import numpy as np

        t = self.tensor(i)
        data = self.model.buffers[t.buffer].data if t.buffer < len(self.model.buffers) else None
        if data is None or len(data) == 0:
            return None
        dtype = {"INT32": np.int32, "INT64": np.int64, "INT8": np.int8, "UINT8": np.uint8,
                 "FLOAT32": np.float32}.get(self.dtype(i))
        if dtype is None:
            return None
        return np.frombuffer(np.asarray(data, np.uint8).tobytes(), dtype).reshape(
            self.tensor(i).shape)

    def per_channel(self, i):
        q = self.tensor(i).quantization
        return q is not None and q.scale is not None and len(q.scale) > 1


def _activation(op):
    o = op.builtinOptions
    return getattr(o, "fusedActivationFunction", 0) if o is not None else 0


def _batch_axis(axes, rank):
    return any(int(a) % max(rank, 1) == 0 for a in axes)


def _edgetpu_findings(f, name, op):
    """What the file shows about the Edge TPU's stated limit of this op: [(ok, text)]."""
    o, out = op.builtinOptions, []
    edges = [i for i in (list(op.inputs) if name != "QUANTIZE" else []) +
             (list(op.outputs) if name != "DEQUANTIZE" else [])
             if i >= 0 and f.constant(i) is None]
    floats = sorted({f.dtype(i) for i in edges} - set(INTEGER_TYPES) - set(QUANT_PARAM_TYPES))
    if floats:
        out.append((False, f"{'/'.join(floats)} tensors (the Edge TPU runs 8-bit ops only)"))
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        out.append((o.dilationHFactor == o.dilationWFactor,
                    f"dilation {o.dilationHFactor}x{o.dilationWFactor}"))
    if name in ("AVERAGE_POOL_2D", "MAX_POOL_2D", "CONCATENATION"):
        out.append((_activation(op) == 0, "no fused activation" if _activation(op) == 0 else
                    "fused activation"))
    if name == "FULLY_CONNECTED":
        out.append((o.weightsFormat == 0, f"weights format {o.weightsFormat}"))
        shape = f.shape(op.outputs[0])
        out.append((sum(d != 1 for d in shape) <= 1, f"output {shape}"))
    if name in ("PAD", "PADV2"):
        pads = f.constant(op.inputs[1])
        if pads is None:
            out.append((None, "paddings not constant"))
        else:
            out.append((not pads[0].any(), f"paddings {pads.tolist()}"))
    if name in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN"):
        axes = f.constant(op.inputs[1])
        rank = len(f.shape(op.inputs[0]))
        if axes is None:
            out.append((None, "axes not constant"))
        else:
            out.append((not _batch_axis(axes.ravel(), rank), f"axes {axes.ravel().tolist()}"))
    if name == "PACK":
        out.append((o.axis != 0, f"axis {o.axis}"))
    if name == "STRIDED_SLICE":
        strides = f.constant(op.inputs[3])
        out.append((strides is not None and bool((strides == 1).all())
                    and o.ellipsisMask == 0 and o.newAxisMask == 0,
                    f"strides {None if strides is None else strides.tolist()}, ellipsis mask "
                    f"{o.ellipsisMask}, new-axis mask {o.newAxisMask}"))
    return out


def _same_quantisation(f, a, b):
    qa, qb = f.tensor(a).quantization, f.tensor(b).quantization
    return (qa is not None and qb is not None and list(qa.scale or []) == list(qb.scale or [])
            and list(qa.zeroPoint or []) == list(qb.zeroPoint or []))


def _nnapi_findings(f, name, op):
    """What the file shows about the delegate's conditions for this op: [(ok, text)]."""
    o, out = op.builtinOptions, []
    if name in ("L2_NORMALIZATION", "CONCATENATION") and _activation(op) != 0:
        out.append((False, "fused activation"))
    if name == "CONV_2D":
        has_bias = len(op.inputs) > 2 and op.inputs[2] >= 0
        out.append((has_bias, "bias present" if has_bias else "no bias"))
    if name == "FULLY_CONNECTED" and o is not None and o.keepNumDims:
        out.append((True, "keep_num_dims: API 30"))
    if name == "RESHAPE" and len(op.inputs) > 1:
        const = f.constant(op.inputs[1]) is not None
        out.append((const, "constant new shape" if const else
                    "the new shape is computed at run time (a dynamic batch)"))
    if name == "MEAN":
        same = _same_quantisation(f, op.inputs[0], op.outputs[0])
        out.append((same, "input and output quantised alike" if same else
                    "input and output quantised differently"))
    if name in ("CONCATENATION", "SOFTMAX", "SUB"):
        rank = len(f.shape(op.inputs[0]))
        out.append((rank <= 4, f"input rank {rank}"))
    if name == "AVERAGE_POOL_2D":
        taps = o.filterWidth * o.filterHeight
        out.append((taps <= 256 or None, f"{taps}-tap filter"
                    + ("" if taps <= 256 else ": only when an accelerator is named")))
    if name == "PACK":
        rank = len(f.shape(op.inputs[0]))
        out.append((o.axis not in (-1, rank), f"axis {o.axis}"))
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and len(op.inputs) > 1 \
            and f.per_channel(op.inputs[1]):
        out.append((True, "per-channel weights (API 29+)"))
    return out


def _nnapi_api(f, name, op, rule):
    """The oldest API level that takes this op as the file has it."""
    api = rule.min_api
    if name == "FULLY_CONNECTED" and op.builtinOptions is not None and \
            op.builtinOptions.keepNumDims:
        api = max(api, 30)
    return api


def _file_checks(f):
    """Checks over the whole graph that the targets state for every model."""
    shapes = {i: f.shape(i) for i in range(len(f.graph.tensors))}
    dynamic = sorted({f.tensor(i).name.decode() for i, s in shapes.items() if -1 in s})
    used = set()
    for _, _, op in f.ops():
        used.update(int(i) for i in op.inputs if i >= 0)
        used.update(int(i) for i in op.outputs)
    types = collections.Counter(f.dtype(i) for i in used)
    floats = {t: n for t, n in types.items()
              if t not in INTEGER_TYPES and t not in QUANT_PARAM_TYPES}
    io = [f.dtype(i) for i in list(f.graph.inputs) + list(f.graph.outputs)]
    activations = {i for i in used if f.constant(i) is None}  # weights have their own layout
    deep = sorted({f.tensor(i).name.decode() for i in activations
                   if len(shapes[i]) > 3 and any(d > 1 or d == -1 for d in shapes[i][:-3])})
    return {
        "integer_io": all(t in INTEGER_TYPES for t in io),
        "io_types": io,
        "full_integer": not floats,
        "float_tensors": floats,
        "static_shapes": not dynamic,
        "dynamic_count": len(dynamic),
        "deep_count": len(deep),
        "dynamic_tensors": dynamic[:5] + ([f"... {len(dynamic) - 5} more"] if len(dynamic) > 5
                                          else []),
        "innermost_3d": not deep,
        "deep_tensors": deep[:5],
    }


def _status(supported, findings):
    if not supported:
        return "not supported"
    if any(ok is False for ok, _ in findings):
        return "limit not met"
    if any(ok is None for ok, _ in findings):
        return "check on device"
    return "supported"


def _target(f, table, findings_of, extra_of=None, api_of=None):
    rows, order = {}, []
    for index, (name, version, op) in enumerate(f.ops()):
        rule = table.get(name)
        findings = findings_of(f, name, op) if rule is not None else []
        if extra_of is not None and rule is not None:
            findings = findings + extra_of(f, name, version, op, rule)
        row = rows.setdefault(name, {"op": name, "count": 0, "versions": set(),
                                     "limit": rule.limit if rule else None,
                                     "min_api": getattr(rule, "min_api", None),
                                     "findings": {}})
        row["count"] += 1
        row["versions"].add(int(version))
        if api_of is not None and rule is not None:
            row["min_api"] = max(row["min_api"], api_of(f, name, op, rule))
        for ok, text in findings:
            # one line per distinct finding, the worst verdict first
            row["findings"].setdefault(text, ok)
        order.append((index, name, _status(rule is not None, findings)))
    out = []
    for row in rows.values():
        findings = list(row.pop("findings").items())
        row["status"] = _status(row["limit"] is not None, [(ok, t) for t, ok in findings])
        bad = [t for t, ok in findings if ok is False]
        unknown = [t for t, ok in findings if ok is None]
        row["detail"] = "; ".join(bad or unknown)[:300]
        row["versions"] = sorted(row["versions"])
        out.append(row)
    return out, order


def _nnapi_version_findings(f, name, version, op, rule):
    if rule.max_version and version > rule.max_version:
        return [(False, f"op version {version} > {rule.max_version}, the newest the delegate "
                 "takes")]
    return []


def npu_readiness(path):
    """{"file": whole-graph checks, "targets": {"nnapi": ..., "edgetpu": ...}} for a .tflite.

    Each target: "ops" (one row per op type: count, status "supported" / "limit not met" /
    "check on device" / "not supported", the published limit, what the file shows), "blockers"
    (one line each), "ready" (no blocker), "source" (the list it was checked against); the
    Edge TPU also "mapped" (ops before the first one it cannot take: its compiler hands every
    op from there on to the CPU); NNAPI "min_api" / "min_android" (the oldest Android whose
    delegate takes every op the file has, as the file has it).
    """
    with open(os.fspath(path), "rb") as fh:
        f = _File(fh.read())
    checks = _file_checks(f)
    total = len(f.graph.operators)

    tpu_ops, tpu_order = _target(f, EDGE_TPU, _edgetpu_findings)
    first = next(((i, n) for i, n, s in tpu_order if s in ("not supported", "limit not met")),
                 None)
    tpu_blockers = [f"{r['op']} x{r['count']}: {r['status']}"
                    + (f" ({r['detail']})" if r["detail"] else "")
                    for r in tpu_ops if r["status"] in ("not supported", "limit not met")]
    if not checks["static_shapes"]:
        tpu_blockers.append(f"{checks['dynamic_count']} tensors of dynamic shape (export with a "
                            "fixed batch)")
    if not checks["innermost_3d"]:
        tpu_blockers.append(f"{checks['deep_count']} activation tensors with more than 3 "
                            "dimensions larger than 1")
    edgetpu = {"source": EDGE_TPU_SOURCE, "ops": tpu_ops, "blockers": tpu_blockers,
               "ready": not tpu_blockers,
               "mapped": {"ops": first[0] if first else total, "of": total,
                          "first_cpu_op": first[1] if first else None}}

    nn_ops, _ = _target(f, NNAPI, _nnapi_findings, _nnapi_version_findings, _nnapi_api)
    nn_blockers = [f"{r['op']} x{r['count']}: {r['status']}"
                   + (f" ({r['detail']})" if r["detail"] else "")
                   for r in nn_ops if r["status"] in ("not supported", "limit not met")]
    levels = [r["min_api"] for r in nn_ops if r["min_api"]]
    min_api = max(levels) if levels else None
    nnapi = {"source": NNAPI_SOURCE, "ops": nn_ops, "blockers": nn_blockers,
             "ready": not nn_blockers, "min_api": min_api,
             "min_android": android_name(min_api) if min_api else None}
    return {"path": os.fspath(path), "ops": total, "file": checks,
            "targets": {"nnapi": nnapi, "edgetpu": edgetpu}}

