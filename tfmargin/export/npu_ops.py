"""What NNAPI and the Edge TPU compiler say they accept, per TFLite builtin op, for a model
quantised to 8 bits (the data npu.py checks a file against).

NNAPI: TensorFlow Lite's NNAPI delegate (tensorflow/lite/delegates/nnapi/nnapi_delegate.cc:
NNAPIDelegateKernel::Validate and NeedInt8Conversion). `min_api` is the oldest Android API level
at which the delegate takes the op with int8 tensors: from API 30 (NNAPI 1.3) int8 is native
(TENSOR_QUANT8_ASYMM_SIGNED); below it the delegate shifts int8 to uint8 for the ops it knows
how to, and refuses int8 convolutions and fully-connected layers below API 29. `max_version` is
the newest op version Validate takes. An op without a row is not delegated at all (it stays on
the CPU: SHAPE and BATCH_MATMUL are such ops).

Edge TPU: the "supported operations" table of coral.ai/docs/edgetpu/models-intro (Edge TPU
compiler 16), with each op's stated limit. Every model must also be fully 8-bit quantised, have
static tensor sizes, and keep tensors to 3 dimensions (more only if the outer ones are 1); the
compiler maps ops in order until the first one it cannot take and leaves the rest to the CPU.
"""

import collections

NNAPI_SOURCE = ("TensorFlow Lite NNAPI delegate (tensorflow/lite/delegates/nnapi/"
                "nnapi_delegate.cc: Validate, NeedInt8Conversion)")
EDGE_TPU_SOURCE = ("Coral, TensorFlow models on the Edge TPU: supported operations "
                   "(coral.ai/docs/edgetpu/models-intro, Edge TPU compiler 16)")

NnapiRule = collections.namedtuple("NnapiRule", "min_api max_version limit note")
EdgeTpuRule = collections.namedtuple("EdgeTpuRule", "limit")

ANDROID = {27: "Android 8.1", 28: "Android 9", 29: "Android 10", 30: "Android 11",
           31: "Android 12"}


def android_name(api):
    return f"{ANDROID.get(api, 'Android')} (API {api})"


def _nnapi(min_api, max_version, limit="", note=""):
    """`limit`: a condition the delegate checks (npu.py reads it from the file where it can,
    else reports "check on device"); `note`: how the delegate treats the op, for the reader."""
    return NnapiRule(min_api, max_version, limit, note)


NNAPI = {
    "ADD": _nnapi(27, 2, note="int8 shifted to uint8 below API 30"),
    "SUB": _nnapi(29, 3, "input rank <= 4", "quantised from API 29"),
    "MUL": _nnapi(27, 2, note="version 3 only when an accelerator is named"),
    "CONV_2D": _nnapi(29, 3, "a bias", "int8 from API 29; dilation from API 29"),
    "DEPTHWISE_CONV_2D": _nnapi(29, 3, note="int8 from API 29"),
    "FULLY_CONNECTED": _nnapi(29, 5, note="int8 from API 29; keep_num_dims from API 30"),
    "L2_NORMALIZATION": _nnapi(29, 2, "no fused activation", "int8 from API 29 (below: "
                                                            "float, 4-D only)"),
    "PAD": _nnapi(29, 2, "no zero-size dimension", "quantised from API 29"),
    "PADV2": _nnapi(29, 2, "no zero-size dimension", "quantised from API 29"),
    "QUANTIZE": _nnapi(30, 2, note="float to int8 from API 30 (uint8 output before)"),
    "DEQUANTIZE": _nnapi(29, 2, "per-tensor input", "int8 from API 29 (zero point 0 on 29)"),
    "RESHAPE": _nnapi(27, 1, "a constant new shape"),
    "STRIDED_SLICE": _nnapi(28, 2, "no ellipsis or new-axis mask (the delegate drops them)"),
    "PACK": _nnapi(30, 2, "not along the last axis", "int8, int32 or float"),
    "CONCATENATION": _nnapi(27, 2, "no fused activation; rank <= 4"),
    "PRELU": _nnapi(29, 1),
    "MEAN": _nnapi(29, 2, "input and output quantised alike", "quantised from API 29"),
    "AVERAGE_POOL_2D": _nnapi(27, 2, "quantised filters of at most 256 taps unless an "
                                     "accelerator is named"),
    "MAX_POOL_2D": _nnapi(27, 2),
    "RELU": _nnapi(27, 2),
    "RELU6": _nnapi(27, 2),
    "RELU_N1_TO_1": _nnapi(27, 2),
    "LOGISTIC": _nnapi(27, 2),
    "TANH": _nnapi(29, 2, note="quantised from API 29"),
    "HARD_SWISH": _nnapi(27, None, note="lowered to MUL/ADD below API 30"),
    "MAXIMUM": _nnapi(29, 3, "a scalar operand must be constant"),
    "MINIMUM": _nnapi(29, 3, "a scalar operand must be constant"),
    "EXPAND_DIMS": _nnapi(29, 1, "a constant axis"),
    "SQUEEZE": _nnapi(30, 1, note="not in the int8-to-uint8 list: int8 needs API 30"),
    "TRANSPOSE": _nnapi(28, 2, "a constant permutation"),
    "SOFTMAX": _nnapi(27, 2, "input rank <= 4"),
}

EDGE_TPU = {name: EdgeTpuRule(limit) for name, limit in {
    "ADD": "",
    "AVERAGE_POOL_2D": "no fused activation",
    "CONCATENATION": "no fused activation; a constant input must be the only other input "
                     "and all zeros",
    "CONV_2D": "same dilation in x and y",
    "DEPTHWISE_CONV_2D": "same dilation in x and y",
    "EXPAND_DIMS": "",
    "FULLY_CONNECTED": "default weights format only; one-dimensional output",
    "L2_NORMALIZATION": "",
    "LOGISTIC": "",
    "LSTM": "unidirectional only",
    "MAXIMUM": "",
    "MAX_POOL_2D": "no fused activation",
    "MEAN": "not over the batch dimension",
    "MINIMUM": "",
    "MUL": "",
    "PACK": "not along the batch dimension",
    "PAD": "not along the batch dimension",
    "PRELU": "alpha varies along the innermost dimension only",
    "QUANTIZE": "",
    "REDUCE_MAX": "not over the batch dimension",
    "REDUCE_MIN": "not over the batch dimension",
    "RELU": "",
    "RELU6": "",
    "RELU_N1_TO_1": "",
    "RESHAPE": "some reshapes of large tensors are left to the CPU",
    "RESIZE_BILINEAR": "3-D input and output; may be left to the CPU for precision",
    "RESIZE_NEAREST_NEIGHBOR": "3-D input and output; may be left to the CPU for precision",
    "RSQRT": "",
    "SLICE": "",
    "SOFTMAX": "1-D input",
    "SPACE_TO_DEPTH": "",
    "SPLIT": "not along the batch dimension",
    "SQUEEZE": "",
    "STRIDED_SLICE": "strides of 1, no ellipsis or new-axis masks",
    "SUB": "",
    "SUM": "not over the batch dimension",
    "SQUARED_DIFFERENCE": "",
    "TANH": "",
    "TRANSPOSE": "",
    "TRANSPOSE_CONV": "",
}.items()}
