"""Export a trained student to every deployment format, with its parity and cost report.

    python -m tfmargin.cli.export --model=runs/md/student.keras --output=savedmodels/md \
        --formats=saved_model,tflite_fp32,tflite_fp16,tflite_dynamic,tflite_int8,qat_int8,onnx \
        --representative=data/synthetic/train.rec --num_images=200 \
        --qat_data=data/synthetic/train.rec --qat_teacher=runs/teacher/signal.npy --qat_steps=500 \
        --test_bin=data/synthetic/test.bin --threshold_set=data/synthetic/identification.npz

Writes savedmodels/NAME/{saved_model/, model.keras, *.tflite, model.onnx, model_card.json,
report.json, report.md} (savedmodels/README.md). Flags, inputs and the output path are checked
before any work starts; a bad one is a one-line error naming it.
Exit codes: 0 done, 1 failed while working, 2 bad usage (one `error:` line on stderr).
"""

import json
import os
import shlex
import sys

from absl import app, flags

from tfmargin.cli import common

FORMATS = ("saved_model", "tflite_fp32", "tflite_fp16", "tflite_dynamic", "tflite_int8",
           "tflite_int8_io", "qat_int8", "onnx")  # = tfmargin.export.run.FORMATS (no TF import)

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "Trained Keras model (.keras): the training model (backbone "
                    "+ head; QAT needs the head) or the backbone.")
flags.DEFINE_string("output", None, "Export folder, e.g. savedmodels/NAME.")
flags.DEFINE_list("formats", ["saved_model", "tflite_fp32", "tflite_fp16", "tflite_dynamic",
                              "tflite_int8", "onnx"], f"Any of {', '.join(FORMATS)}.")
flags.DEFINE_string("representative", None, "Calibration images for int8: a training source "
                    "(.rec / dir with train.rec, TFRecord shards, identity folders), a .bin or "
                    "a .npy of images.")
flags.DEFINE_integer("num_images", 200, "Calibration images drawn from --representative.")
flags.DEFINE_enum("integer_io", "int8", ["int8", "uint8"], "I/O type of tflite_int8_io.")
flags.DEFINE_integer("integer_io_batch", 1, "Fixed batch of tflite_int8_io, the NPU file (NPU "
                     "compilers and delegates want static shapes); 0 keeps the batch dynamic.",
                     lower_bound=0)
flags.DEFINE_string("qat_data", None, "QAT training source (.rec / TFRecord / folders), or a "
                    "teacher signal directory (tfmargin.cli.teacher) for a MarginDistillation "
                    "student: its shards carry the teacher embeddings.")
flags.DEFINE_string("qat_teacher", None, "Teacher embeddings of --qat_data for a "
                    "MarginDistillation student: a .npy aligned with the source, or 'labels' "
                    "(embedding + class float labels in the .rec). TFRecord shards carry their own.")
flags.DEFINE_integer("qat_steps", 200, "QAT fine-tuning steps.")
flags.DEFINE_integer("qat_batch_size", 64, "QAT batch size.")
flags.DEFINE_float("qat_learning_rate", 1e-3, "QAT SGD learning rate (momentum 0.9).")
flags.DEFINE_integer("opset", 17, "ONNX opset.")
flags.DEFINE_string("test_bin", None, "Held-out verification .bin for the report's accuracy.")
flags.DEFINE_string("held_out", None, "Identification set (.npz / directory) of unseen "
                    "identities: the report's TAR@FAR 1e-3 / 1e-4 of every artifact, all pairs.")
flags.DEFINE_string("threshold_set", None, "Held-out set whose pairs set the cosine thresholds "
                    "at FAR 1e-3 / 1e-4 written into each .tflite's metadata: an "
                    "identification set (.npz / directory, all pairs) or a verification .bin.")
flags.DEFINE_integer("latency_runs", 200, "Timed runs per latency (median); 0 skips latency.")
flags.DEFINE_list("threads", ["1", "2"], "Thread counts for latency.")
flags.DEFINE_string("card", None, "JSON file with model-card fields (training, teacher, "
                    "verification, ...).")
flags.DEFINE_bool("report", True, "Write report.json / report.md.")


def _exists(flag, path):
    if path is not None and path != "labels" and not os.path.exists(path):
        raise app.UsageError(f"--{flag}: {path} does not exist")


def validate():
    """Every flag checked before work; UsageError names the flag."""
    if not FLAGS.model:
        raise app.UsageError("--model is required")
    if not FLAGS.output:
        raise app.UsageError("--output is required")
    if not FLAGS.model.endswith((".keras", ".h5")):
        raise app.UsageError(f"--model: expected a .keras file, got {FLAGS.model}")
    _exists("model", FLAGS.model)
    unknown = [f for f in FLAGS.formats if f not in FORMATS]
    if unknown or not FLAGS.formats:
        raise app.UsageError(f"--formats: unknown {', '.join(unknown) or '(empty)'}; choose from "
                             f"{', '.join(FORMATS)}")
    int8 = {"tflite_int8", "tflite_int8_io"} & set(FLAGS.formats)
    if int8 and not FLAGS.representative:
        raise app.UsageError(f"--representative is required for {', '.join(sorted(int8))}")
    _exists("representative", FLAGS.representative)
    if FLAGS.num_images < 1:
        raise app.UsageError(f"--num_images must be >= 1, got {FLAGS.num_images}")
    if "qat_int8" in FLAGS.formats:
        if not FLAGS.qat_data:
            raise app.UsageError("--qat_data is required for qat_int8")
        _exists("qat_data", FLAGS.qat_data)
        _exists("qat_teacher", FLAGS.qat_teacher)
        if FLAGS.qat_steps < 0 or FLAGS.qat_batch_size < 1 or not FLAGS.qat_learning_rate > 0:
            raise app.UsageError("--qat_steps must be >= 0, --qat_batch_size >= 1 and "
                                 "--qat_learning_rate > 0")
    if FLAGS.opset < 13:
        raise app.UsageError(f"--opset must be >= 13, got {FLAGS.opset}")
    _exists("test_bin", FLAGS.test_bin)
    _exists("threshold_set", FLAGS.threshold_set)
    _exists("held_out", FLAGS.held_out)
    if FLAGS.latency_runs < 0:
        raise app.UsageError(f"--latency_runs must be >= 0, got {FLAGS.latency_runs}")
    try:
        threads = tuple(int(t) for t in FLAGS.threads)
    except ValueError:
        raise app.UsageError(f"--threads must be integers, got {FLAGS.threads}") from None
    if not threads or min(threads) < 1:
        raise app.UsageError(f"--threads must be >= 1, got {FLAGS.threads}")
    card = None
    if FLAGS.card:
        _exists("card", FLAGS.card)
        try:
            with open(FLAGS.card) as f:
                card = json.load(f)
        except json.JSONDecodeError as e:
            raise app.UsageError(f"--card: {FLAGS.card} is not JSON ({e})") from None
        if not isinstance(card, dict):
            raise app.UsageError(f"--card: {FLAGS.card} must hold a JSON object")
    common.check_output("output", FLAGS.output, "dir")
    return threads, card


@common.command(failure=(ValueError,))  # ExportError is a TfmarginError
def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    threads, card = validate()

    from tfmargin.export.run import export_all

    command = "python -m tfmargin.cli.export " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    paths = export_all(
        FLAGS.model, FLAGS.output, FLAGS.formats, representative=FLAGS.representative,
        num_images=FLAGS.num_images, integer_io=FLAGS.integer_io, qat_data=FLAGS.qat_data,
        qat_steps=FLAGS.qat_steps, teacher=FLAGS.qat_teacher,
        qat_batch_size=FLAGS.qat_batch_size, qat_learning_rate=FLAGS.qat_learning_rate,
        opset=FLAGS.opset, test_bin=FLAGS.test_bin, report=FLAGS.report,
        latency_runs=FLAGS.latency_runs, threads=threads, card=card, command=command,
        threshold_set=FLAGS.threshold_set, held_out=FLAGS.held_out,
        integer_io_batch=FLAGS.integer_io_batch or None)
    for fmt, path in paths.items():
        print(f"{fmt}: {path}")
    if FLAGS.report:
        print(f"report: {os.path.join(FLAGS.output, 'report.md')}")
    return 0


if __name__ == "__main__":
    common.run(main)
