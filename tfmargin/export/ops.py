"""What is inside each exported file: the op list (for BUILD.md and delegate planning), tensor
types, the I/O contract, and the check that a TFLite file holds only built-in ops.

TFLite files are read straight from their flatbuffer (LiteRT's schema), so the listing is of
the file itself, not of what an interpreter chose to delegate.
"""

import collections
import os

from tfmargin.export.model import ExportError


class FlexOpsError(ExportError):
    """A TFLite file needs select-TF (Flex) or custom ops, which phone runtimes do not ship."""


def _read(model):
    if isinstance(model, (bytes, bytearray)):
        return bytes(model), "tflite model"
    path = os.fspath(model)
    with open(path, "rb") as f:
        return f.read(), path


def _names(cls):
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


def _flatbuffer(data):
    from ai_edge_litert import schema_py_generated as schema

    return schema, schema.Model.GetRootAs(data, 0)


def tflite_ops(model):
    """{op name: count} over every subgraph of a .tflite file (path or bytes), in first-use
    order. Custom ops appear under their custom name (select-TF ops start with "Flex")."""
    data, _ = _read(model)
    schema, root = _flatbuffer(data)
    builtin = _names(schema.BuiltinOperator)
    codes = []
    for i in range(root.OperatorCodesLength()):
        code = root.OperatorCodes(i)
        op = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if op == schema.BuiltinOperator.CUSTOM:
            codes.append((code.CustomCode() or b"?").decode())
        else:
            codes.append(builtin.get(op, f"BUILTIN_{op}"))
    counts = collections.Counter()
    for s in range(root.SubgraphsLength()):
        graph = root.Subgraphs(s)
        for i in range(graph.OperatorsLength()):
            counts[codes[graph.Operators(i).OpcodeIndex()]] += 1
    return dict(counts)


def tflite_tensor_types(model):
    """{tensor type: count} over the main subgraph (int8 files are mostly INT8 / INT32 bias)."""
    data, _ = _read(model)
    schema, root = _flatbuffer(data)
    names = _names(schema.TensorType)
    graph = root.Subgraphs(0)
    return dict(collections.Counter(names[graph.Tensors(i).Type()]
                                    for i in range(graph.TensorsLength())))


def check_builtin_ops(model, where=None):
    """Raise FlexOpsError (one line, naming the file and the ops) unless every op is built in."""
    where = where or _read(model)[1]
    foreign = sorted(op for op in tflite_ops(model) if not op.isupper() or op.startswith("Flex"))
    if foreign:
        raise FlexOpsError(f"{where}: needs select-TF / custom ops {', '.join(foreign)}; phone "
                           "runtimes ship only TFLite built-ins (rebuild those layers)")


def tflite_io(path):
    """The input and output contract of a .tflite file: name, dtype, shape and quantisation."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=os.fspath(path))

    def info(d):
        scale, zero = d["quantization"]
        out = {"name": d["name"], "dtype": d["dtype"].__name__,
               "shape": [int(s) for s in d.get("shape_signature", d["shape"])]}
        if scale:
            out["scale"], out["zero_point"] = float(scale), int(zero)
        return out

    return {"inputs": [info(d) for d in interpreter.get_input_details()],
            "outputs": [info(d) for d in interpreter.get_output_details()]}


def onnx_ops(path):
    """{op type: count} of an .onnx file's graph."""
    import onnx

    graph = onnx.load(os.fspath(path), load_external_data=False).graph
    return dict(collections.Counter(node.op_type for node in graph.node))


# Plumbing of a SavedModel's function graphs, not computation.
_TF_PLUMBING = {"Placeholder", "Identity", "NoOp", "Const", "StatefulPartitionedCall",
                "PartitionedCall", "ReadVariableOp", "VarHandleOp", "StaticRegexFullMatch",
                "StringJoin", "ShardedFilename", "MergeV2Checkpoints", "SaveV2", "RestoreV2",
                "Select", "AssignVariableOp", "Pack", "DisableCopyOnRead"}


def saved_model_ops(directory, signature="serving_default"):
    """{TF op type: count} computed by a SavedModel signature (its function library included)."""
    import tensorflow as tf

    loaded = tf.saved_model.load(os.fspath(directory))
    fn = loaded.signatures[signature]
    graph_def = fn.graph.as_graph_def()
    nodes = list(graph_def.node)
    for f in graph_def.library.function:
        if "saver" in f.signature.name or "restore" in f.signature.name:
            continue
        nodes.extend(f.node_def)
    return dict(collections.Counter(n.op for n in nodes if n.op not in _TF_PLUMBING))


def artifact_ops(path):
    """The op list of any exported artifact, by its kind."""
    path = os.fspath(path)
    if os.path.isdir(path):
        return saved_model_ops(path)
    if path.endswith(".tflite"):
        return tflite_ops(path)
    if path.endswith(".onnx"):
        return onnx_ops(path)
    raise ExportError(f"{path}: not a SavedModel directory, .tflite or .onnx file")
