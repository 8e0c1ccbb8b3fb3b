"""NPU readiness of a full-integer TFLite file: its ops and tensors against what Android's
NNAPI delegate and the Edge TPU compiler publish that they accept.

    npu_readiness("savedmodels/s/tflite_int8_io.tflite")["targets"]["edgetpu"]["ready"]

Neither compiler runs here (NNAPI needs an Android device, edgetpu_compiler is a Debian package
outside PyPI), so this is a static check of the file against the published op lists
(npu_ops.py, with their sources). Each stated limit is evaluated where the file holds what it
talks about (constant padding and axes, dilations, fused activations, quantisation, tensor
types, ranks and static shapes); a stated limit the file cannot show makes the op "check on
device", never "supported".
"""

import collections
import os

from tfmargin.export.npu_ops import EDGE_TPU, EDGE_TPU_SOURCE, NNAPI, NNAPI_SOURCE, android_name

INTEGER_TYPES = ("INT8", "UINT8")
DYNAMIC = "dynamic shape"
DEEP = "a tensor with more than its innermost 3 dimensions larger than 1"
GENERAL = (DYNAMIC, DEEP)  # whole-graph rules: one blocker line each, not one per op
VERDICT_ORDER = {False: 0, None: 1, True: 2}  # the worst verdict of a finding wins


class _File:
    """The parts of a .tflite flatbuffer the checks read (LiteRT's schema, object API)."""

    def __init__(self, data):
        from ai_edge_litert import schema_py_generated as schema

        self.model = schema.ModelT.InitFromPackedBuf(data, 0)
        self.graph = self.model.subgraphs[0]
        self.tensors = self.graph.tensors or []
        self.operators = self.graph.operators or []
        names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        self.type_names = {v: k for k, v in vars(schema.TensorType).items()
                           if not k.startswith("_")}
        self.codes = []
        for c in self.model.operatorCodes or []:
            op = max(c.builtinCode, c.deprecatedBuiltinCode)
            # a custom op never passes for the built-in of the same name
            self.codes.append("CUSTOM:" + (c.customCode or b"?").decode()
                              if op == schema.BuiltinOperator.CUSTOM
                              else names.get(op, f"BUILTIN_{op}"))

    def ops(self):
        """[(name, version, operator)] in execution order."""
        return [(self.codes[o.opcodeIndex], self.model.operatorCodes[o.opcodeIndex].version, o)
                for o in self.operators]

    def dtype(self, i):
        return self.type_names[self.tensors[i].type]

    def shape(self, i):
        t = self.tensors[i]
        sig = t.shapeSignature if t.shapeSignature is not None else t.shape
        return [int(d) for d in (sig if sig is not None else [])]

    def is_constant(self, i):
        t = self.tensors[i]
        buffers = self.model.buffers or []
        return 0 < t.buffer < len(buffers) and buffers[t.buffer].data is not None \
            and len(buffers[t.buffer].data) > 0

    def constant(self, i):
        """The value of constant input `i` as a numpy array; None when it is not a constant
        (or an omitted optional input, i < 0), or of a type the checks do not read."""
        import numpy as np

        if i < 0 or not self.is_constant(i):
            return None
        dtype = {"INT32": np.int32, "INT64": np.int64, "INT8": np.int8, "UINT8": np.uint8,
                 "FLOAT32": np.float32}.get(self.dtype(i))
        if dtype is None:
            return None
        data = np.asarray(self.model.buffers[self.tensors[i].buffer].data, np.uint8).tobytes()
        return np.frombuffer(data, dtype).reshape(self.tensors[i].shape)

    def activations(self, op, boundary=True):
        """The op's non-constant inputs and outputs; without `boundary`, QUANTIZE's float
        input and DEQUANTIZE's float output are left out (they are the op's job)."""
        ins = [] if not boundary and self.codes[op.opcodeIndex] == "QUANTIZE" else op.inputs
        outs = [] if not boundary and self.codes[op.opcodeIndex] == "DEQUANTIZE" else op.outputs
        return [int(i) for i in list(ins) + list(outs) if i >= 0 and not self.is_constant(i)]

    def per_channel(self, i):
        q = self.tensors[i].quantization
        return q is not None and q.scale is not None and len(q.scale) > 1


def _activation(op):
    o = op.builtinOptions
    return getattr(o, "fusedActivationFunction", 0) if o is not None else 0


def _input(op, k):
    return int(op.inputs[k]) if len(op.inputs) > k else -1


def _edgetpu_findings(f, name, op):
    """What the file shows about the Edge TPU's rules for this op: [(ok, text)]."""
    o, out = op.builtinOptions, []
    tensors = f.activations(op, boundary=False)
    wide = sorted({f.dtype(i) for i in tensors} - set(INTEGER_TYPES))
    if wide:
        out.append((False, f"{'/'.join(wide)} tensors (the Edge TPU runs 8-bit ops only)"))
    if any(-1 in f.shape(i) for i in tensors):
        out.append((False, DYNAMIC))
    if any(len(f.shape(i)) > 3 and any(d != 1 for d in f.shape(i)[:-3]) for i in tensors):
        out.append((False, DEEP))
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        out.append((o.dilationHFactor == o.dilationWFactor,
                    f"dilation {o.dilationHFactor}x{o.dilationWFactor}"))
    if name in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        out.append((_activation(op) == 0, "fused activation" if _activation(op) else
                    "no fused activation"))
    if name == "CONCATENATION":
        out.append((_activation(op) == 0, "fused activation" if _activation(op) else
                    "no fused activation"))
        consts = [f.constant(int(i)) for i in op.inputs if i >= 0 and f.is_constant(int(i))]
        out.append((not consts or (len(op.inputs) == 2 and consts[0] is not None
                                   and not consts[0].any()),
                    f"{len(consts)} constant input(s) of {len(op.inputs)}"))
    if name == "FULLY_CONNECTED":
        out.append((o.weightsFormat == 0, f"weights format {o.weightsFormat}"))
        shape = f.shape(op.outputs[0])
        out.append((sum(d != 1 for d in shape) <= 1, f"output {shape}"))
    if name in ("PAD", "PADV2"):
        pads = f.constant(_input(op, 1))
        out.append((None, "paddings not constant") if pads is None else
                   (not pads[0].any(), f"paddings {pads.tolist()}"))
    if name in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "SPLIT"):
        axes = f.constant(_input(op, 0 if name == "SPLIT" else 1))
        rank = len(f.shape(_input(op, 1 if name == "SPLIT" else 0)))
        out.append((None, "axes not constant") if axes is None else
                   (not any(int(a) % max(rank, 1) == 0 for a in axes.ravel()),
                    f"axes {axes.ravel().tolist()} of a rank-{rank} input"))
    if name == "PACK":
        out.append((o.axis != 0, f"axis {o.axis}"))
    if name == "STRIDED_SLICE":
        strides = f.constant(_input(op, 3))
        out.append((strides is not None and bool((strides == 1).all())
                    and o.ellipsisMask == 0 and o.newAxisMask == 0,
                    f"strides {None if strides is None else strides.tolist()}, ellipsis mask "
                    f"{o.ellipsisMask}, new-axis mask {o.newAxisMask}"))
    if name == "SOFTMAX":
        shape = f.shape(_input(op, 0))
        out.append((sum(d != 1 for d in shape) <= 1, f"input {shape}"))
    if name == "PRELU":
        alpha = f.constant(_input(op, 1))
        out.append((None, "alpha not constant") if alpha is None else
                   (sum(d != 1 for d in alpha.shape[:-1]) == 0, f"alpha {list(alpha.shape)}"))
    return out


def _nnapi_findings(f, name, op):
    """What the file shows about the delegate's conditions for this op: [(ok, text)]."""
    o, out = op.builtinOptions, []
    if name in ("L2_NORMALIZATION", "CONCATENATION"):
        out.append((_activation(op) == 0, "fused activation" if _activation(op) else
                    "no fused activation"))
    if name == "CONV_2D":
        has_bias = _input(op, 2) >= 0
        out.append((has_bias, "bias present" if has_bias else "no bias"))
    if name == "RESHAPE":
        if _input(op, 1) >= 0:
            const = f.constant(_input(op, 1)) is not None
            out.append((const, "constant new shape" if const else
                        "the new shape is computed at run time (a dynamic batch)"))
        else:
            out.append((True, "new shape in the options"))
    if name == "MEAN":
        qa, qb = f.tensors[_input(op, 0)].quantization, f.tensors[op.outputs[0]].quantization
        same = (qa is not None and qb is not None
                and list(qa.scale if qa.scale is not None else []) ==
                list(qb.scale if qb.scale is not None else [])
                and list(qa.zeroPoint if qa.zeroPoint is not None else []) ==
                list(qb.zeroPoint if qb.zeroPoint is not None else []))
        out.append((same, "input and output quantised alike" if same else
                    "input and output quantised differently"))
    if name in ("CONCATENATION", "SOFTMAX", "SUB"):
        rank = len(f.shape(_input(op, 0)))
        out.append((rank <= 4, f"input rank {rank}"))
    if name == "AVERAGE_POOL_2D":
        taps = o.filterWidth * o.filterHeight
        out.append((True if taps <= 256 else None, f"{taps}-tap filter"))
    if name == "PACK":
        rank = len(f.shape(_input(op, 0)))
        out.append((o.axis not in (-1, rank), f"axis {o.axis} of rank-{rank} inputs"))
    if name in ("PAD", "PADV2"):
        zero = any(0 in f.shape(i) for i in f.activations(op))
        out.append((not zero, "a zero-size dimension" if zero else "no zero-size dimension"))
    if name == "DEQUANTIZE":
        per_channel = f.per_channel(_input(op, 0))
        out.append((not per_channel, "per-channel input" if per_channel else
                    "per-tensor input"))
    if name == "STRIDED_SLICE":
        out.append((o.ellipsisMask == 0 and o.newAxisMask == 0,
                    f"ellipsis mask {o.ellipsisMask}, new-axis mask {o.newAxisMask}"))
    if name in ("EXPAND_DIMS", "TRANSPOSE"):
        const = f.constant(_input(op, 1)) is not None
        out.append((const, "constant operand" if const else "operand computed at run time"))
    return out


def _nnapi_api(f, name, op, rule):
    """The oldest API level that takes this op as the file has it."""
    api = rule.min_api
    if name == "FULLY_CONNECTED" and op.builtinOptions is not None and \
            op.builtinOptions.keepNumDims:
        api = max(api, 30)
    return api


def _status(listed, findings):
    if not listed:
        return "not supported"
    worst = min((ok for ok, _ in findings), key=VERDICT_ORDER.get, default=True)
    return {False: "limit not met", None: "check on device", True: "supported"}[worst]


def _target(f, table, findings_of, version_of=None, api_of=None):
    """(one row per op type, [(index, name, status)] per op in execution order)."""
    rows, order = {}, []
    for index, (name, version, op) in enumerate(f.ops()):
        rule = table.get(name)
        findings = findings_of(f, name, op) if rule is not None else []
        if rule is not None and version_of is not None:
            findings += version_of(version, rule)
        if rule is not None and rule.limit and not findings:
            findings.append((None, rule.limit))  # a stated limit the file does not show
        row = rows.setdefault(name, {"op": name, "count": 0, "versions": set(),
                                     "limit": rule.limit if rule else None,
                                     "note": getattr(rule, "note", "") if rule else "",
                                     "min_api": getattr(rule, "min_api", None),
                                     "findings": {}, "listed": rule is not None})
        row["count"] += 1
        row["versions"].add(int(version))
        if api_of is not None and rule is not None:
            row["min_api"] = max(row["min_api"], api_of(f, name, op, rule))
        for ok, text in findings:
            seen = row["findings"].get(text, True)
            row["findings"][text] = min(seen, ok, key=VERDICT_ORDER.get)
        order.append((index, name, _status(rule is not None, findings)))
    out = []
    for row in rows.values():
        findings = [(ok, t) for t, ok in row.pop("findings").items()]
        row["status"] = _status(row.pop("listed"), findings)
        worst = [t for ok, t in findings if ok is False] or [t for ok, t in findings if ok is None]
        row["detail"] = "; ".join(worst)[:300]
        row["own_failures"] = [t for ok, t in findings if ok is False and t not in GENERAL]
        row["versions"] = sorted(row["versions"])
        out.append(row)
    return out, order


def _nnapi_version(version, rule):
    if rule.max_version and version > rule.max_version:
        return [(False, f"op version {version} > {rule.max_version}, the newest the delegate "
                 "takes")]
    return []


def _file_checks(f):
    """Whole-graph facts the targets' general rules are about."""
    used = sorted({i for _, _, op in f.ops() for i in f.activations(op)})
    dynamic = [i for i in used if -1 in f.shape(i)]
    deep = [i for i in used if len(f.shape(i)) > 3 and any(d != 1 for d in f.shape(i)[:-3])]
    types = collections.Counter(f.dtype(i) for i in used)
    io = [f.dtype(i) for i in list(f.graph.inputs if f.graph.inputs is not None else [])
          + list(f.graph.outputs if f.graph.outputs is not None else [])]
    # int32 activations are shape arithmetic (a dynamic batch), not float compute
    inner = {f.dtype(i) for _, _, op in f.ops() for i in f.activations(op, boundary=False)}
    return {"integer_io": bool(io) and all(t in INTEGER_TYPES for t in io), "io_types": io,
            "full_integer": bool(inner) and inner <= {*INTEGER_TYPES, "INT32"},
            "activation_types": dict(types),
            "static_shapes": not dynamic, "dynamic_count": len(dynamic),
            "innermost_3d": not deep, "deep_count": len(deep)}


def _blockers(rows):
    """One line per op type that is not listed or breaks a limit of its own (the whole-graph
    rules get a line each after these)."""
    out = []
    for r in rows:
        if r["status"] == "not supported":
            out.append(f"{r['op']} x{r['count']}: not supported")
        elif r["own_failures"]:
            out.append(f"{r['op']} x{r['count']}: {'; '.join(r['own_failures'])[:200]}")
    return out


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
    total = len(f.operators)
    general = []
    if not total:
        general.append("the file has no operators")
    elif not checks["full_integer"]:
        general.append("not a full-integer file (activations "
                       + ", ".join(f"{t} x{n}" for t, n in checks["activation_types"].items())
                       + "): NPUs run the int8 export")

    tpu_ops, tpu_order = _target(f, EDGE_TPU, _edgetpu_findings)
    first = next(((i, n) for i, n, s in tpu_order if s in ("not supported", "limit not met")),
                 None)
    tpu_blockers = general + _blockers(tpu_ops)
    if not checks["static_shapes"]:
        tpu_blockers.append(f"{checks['dynamic_count']} tensors of dynamic shape (export with a "
                            "fixed batch)")
    if not checks["innermost_3d"]:
        tpu_blockers.append(f"{checks['deep_count']} activation tensors with more than their "
                            "innermost 3 dimensions larger than 1")
    edgetpu = {"source": EDGE_TPU_SOURCE, "ops": tpu_ops, "blockers": tpu_blockers,
               "ready": not tpu_blockers,
               "mapped": {"ops": first[0] if first else total, "of": total,
                          "first_cpu_op": first[1] if first else None}}

    nn_ops, _ = _target(f, NNAPI, _nnapi_findings, _nnapi_version, _nnapi_api)
    nn_blockers = general + _blockers(nn_ops)
    levels = [r["min_api"] for r in nn_ops if r["min_api"]]
    min_api = max(levels) if levels else None
    nnapi = {"source": NNAPI_SOURCE, "ops": nn_ops, "blockers": nn_blockers,
             "ready": not nn_blockers, "min_api": min_api,
             "min_android": android_name(min_api) if min_api else None}
    return {"path": os.fspath(path), "ops": total, "file": checks,
            "targets": {"nnapi": nnapi, "edgetpu": edgetpu}}
