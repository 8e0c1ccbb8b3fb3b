"""Evaluate face models (any shipped artifact) on verification sets and 1:N identification.

    python -m tfmargin.cli.evaluate --model=student.keras \
        --bins=data/lfw.bin,data/cfp_fp.bin,data/agedb_30.bin --output_json=eval.json
    python -m tfmargin.cli.evaluate --model=student.keras,student.tflite,student_int8.tflite \
        --bins=data/lfw.bin --roc_plot=roc.png          # the same weights, every artifact
    python -m tfmargin.cli.evaluate --model=student.tflite --identification=megaface_dir

    python -m tfmargin.cli.evaluate --teacher_report --model=teacher/classifier.keras \
        --data=data/demo --bins=data/demo/val.bin,data/demo/test.bin

--teacher_report checks a classifier file (backbone + head) before its centers are handed to a
student: the top-1 of its own training images (--data) against its centers and the median
cosine to the own center (tfmargin/evaluate/teacher.py), beside the --bins accuracies.
--model takes .keras / .h5 files, SavedModel directories, .tflite and .onnx files (a
comma-separated list compares them). Prints a markdown table (accuracy +- std over 10 folds,
TAR at each FAR over all pairs, insightface's fold-based VAL@FAR=1e-3) and writes the numbers to
--output_json. --identification takes the layouts of tfmargin/evaluate/identification_set.py:
a .npz with probe, probe_labels, gallery, gallery_labels [, distractors], or a directory with
probe.npz, gallery.npz and distractors/*.npy (streamed); image arrays are embedded with the
model, float arrays are taken as embeddings. Flags and output paths are checked before any model
is loaded; an expected failure is one line naming the file, flag or record.
Exit codes: 0 done, 1 failed while working, 2 bad usage (one `error:` line on stderr).
"""

import os

from absl import app, flags

from tfmargin.atomic import write_json as _write_json
from tfmargin.cli import common

FLAGS = flags.FLAGS
flags.DEFINE_list("model", [], "Artifacts to evaluate: .keras, SavedModel dir, .tflite, .onnx.")
flags.DEFINE_list("bins", [], "Verification sets (insightface .bin files).")
flags.DEFINE_integer("batch_size", 128, "Images per inference call (x2 with --flip).")
flags.DEFINE_bool("flip", True, "Add the embedding of the horizontally flipped image.")
flags.DEFINE_integer("folds", 10, "Contiguous folds of the verification protocol.")
flags.DEFINE_enum("thresholds", "insightface", ["insightface", "exact"],
                  "insightface: the threshold grid np.arange(0, 4, 0.01) (reproduces its "
                  "numbers); exact: every split of the sorted scores.")
flags.DEFINE_string("identification", None, "1:N identification set: a .npz or a directory.")
flags.DEFINE_list("ranks", ["1", "5", "10"], "Ranks k reported for identification.")
flags.DEFINE_string("output_json", None, "Write all numbers here (JSON).")
flags.DEFINE_string("roc_plot", None, "Write ROC curves (one per model and set) to this PNG.")
flags.DEFINE_bool("progress", True, "Progress bars while embedding.")
flags.DEFINE_bool("teacher_report", False, "Check a teacher classifier (--model, one .keras "
                  "with its head) against its training data (--data): top-1 against its own "
                  "centers and the median cosine to them.")
flags.DEFINE_string("data", None, "--teacher_report: the teacher's training data (.rec or a "
                    "directory holding train.rec).")
flags.DEFINE_integer("max_images", None, "--teacher_report: embed an evenly spaced subset of "
                     "this many training images (all when unset).")


def _teacher_report():
    if len(FLAGS.model) != 1 or not FLAGS.data:
        raise app.UsageError("--teacher_report needs one --model (a classifier .keras) and "
                             "--data")
    from tfmargin.evaluate.teacher import teacher_report

    report = teacher_report(FLAGS.model[0], FLAGS.data, bins=FLAGS.bins or None,
                            batch_size=FLAGS.batch_size, max_images=FLAGS.max_images,
                            folds=FLAGS.folds, verbose=FLAGS.progress)
    print(report.format())
    if FLAGS.output_json:
        _write_json(FLAGS.output_json, report.to_dict())
        print(f"results: {FLAGS.output_json}")
    return 0


def _identification_table(rows):
    ranks = sorted({int(k) for _, r in rows for k in r.accuracy})
    head = ["model", "probes", "distractors"] + [f"rank-{k} (%)" for k in ranks]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model, r in rows:
        cells = [model, str(r.probe_ranks.size), str(r.num_distractors)]
        cells += [f"{100 * r.accuracy[k]:.2f}" for k in ranks]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


@common.command(failure=(ValueError,))  # the loaders' errors name the file / flag / record
def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    common.check_output("output_json", FLAGS.output_json, "file")
    common.check_output("roc_plot", FLAGS.roc_plot, "file")
    if FLAGS.teacher_report:
        return _teacher_report()
    if not FLAGS.bins and not FLAGS.identification:
        raise app.UsageError("give --bins and/or --identification")
    if FLAGS.bins and not FLAGS.model:
        raise app.UsageError("--bins needs --model")
    try:
        ranks = tuple(int(k) for k in FLAGS.ranks)
    except ValueError:
        raise app.UsageError(f"--ranks must be integers, got {FLAGS.ranks}") from None

    from tfmargin.evaluate import load_embedder
    from tfmargin.evaluate.identification_set import load_identification_set, run_identification
    from tfmargin.evaluate.sets import evaluate_sets, format_table, load_sets

    sets = load_sets(FLAGS.bins) if FLAGS.bins else {}
    id_set = (load_identification_set(FLAGS.identification) if FLAGS.identification
              else None)
    models = FLAGS.model or [None]
    payload = {"flip": FLAGS.flip, "folds": FLAGS.folds, "thresholds": FLAGS.thresholds,
               "bins": list(FLAGS.bins), "identification_set": FLAGS.identification,
               "models": {}}
    verification_rows, identification_rows, curves = [], [], {}
    for model in models:
        embedder = load_embedder(model) if model else None
        name = model or "(embeddings)"
        entry = payload["models"][name] = {"artifact": embedder.kind if embedder else None}
        if sets:
            results = evaluate_sets(embedder, sets, batch_size=FLAGS.batch_size,
                                    flip=FLAGS.flip, folds=FLAGS.folds,
                                    thresholds=FLAGS.thresholds, verbose=FLAGS.progress)
            entry["sets"] = {s: r.to_dict() for s, r in results.items()}
            for s, r in results.items():
                verification_rows.append((name, s, r))
                curves[f"{os.path.basename(name.rstrip('/'))} {s}"] = r
        if id_set is not None:
            r = run_identification(embedder, id_set, batch_size=FLAGS.batch_size,
                                   flip=FLAGS.flip, ranks=ranks, verbose=FLAGS.progress)
            entry["identification"] = r.to_dict()
            identification_rows.append((name, r))

    if verification_rows:
        print(format_table(verification_rows))
    if identification_rows:
        print()
        print(_identification_table(identification_rows))
    if FLAGS.roc_plot and curves:
        from tfmargin.evaluate.plots import plot_roc
        print(f"ROC curves: {plot_roc(curves, FLAGS.roc_plot)}")
    if FLAGS.output_json:
        _write_json(FLAGS.output_json, payload)
        print(f"results: {FLAGS.output_json}")
    return 0


if __name__ == "__main__":
    common.run(main)
