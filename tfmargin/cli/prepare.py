"""Prepare datasets: align photos, convert between .rec / TFRecord / folders, build .bin pairs,
or generate the synthetic dataset. The task is the first argument (or --task):

    python -m tfmargin.cli.prepare align --input=photos/ --output=aligned/      # or .../train.rec
    python -m tfmargin.cli.prepare rec2tfrecord --input=faces_emore/train.rec --output=shards/ \
        [--teacher=teacher.npy --teacher_flip=teacher_flip.npy --num_shards=64]
    python -m tfmargin.cli.prepare folders2rec --input=aligned/ --output=data/train.rec
    python -m tfmargin.cli.prepare pairs2bin --pairs=pairs.txt --images=lfw/ --output=lfw.bin \
        [--align]
    python -m tfmargin.cli.prepare synthetic --output=data/synthetic --identities=600 \
        --images_per_identity=20 --seed=0 [--difficulty=medium] [--contact_sheet=sheet.png]
    python -m tfmargin.cli.prepare check --input=faces_emore      # or shards/, lfw.bin, folders/

Each task ends with a one-line summary of its counts (written, skipped, faces not found).
`check` reads a dataset whole (structure, labels, every image test-decoded) and exits 1 when
it found a corrupt image.
Bad input stops with a one-line error naming the file, flag or record; the output paths are
checked before any work.
Exit codes: 0 done, 1 failed while working, 2 bad usage (one `error:` line on stderr).
"""

import os
import sys

from absl import app, flags

from tfmargin.cli import common

TASKS = ("align", "rec2tfrecord", "folders2rec", "pairs2bin", "synthetic", "check")

FLAGS = flags.FLAGS
flags.DEFINE_enum("task", None, TASKS, "What to do (or give it as the first argument).")
flags.DEFINE_string("input", None, "Source: photo folders (align), a .rec / folders "
                    "(rec2tfrecord), identity folders (folders2rec).")
flags.DEFINE_string("output", None, "Destination directory, or a .rec path (align, folders2rec) "
                    "or a .bin path (pairs2bin).")
flags.DEFINE_integer("num_shards", None, "rec2tfrecord: shard count (default: one per 20,000 "
                     "images).")
flags.DEFINE_string("teacher", None, "rec2tfrecord: .npy (N, D) teacher embeddings in the "
                    "source's image order.")
flags.DEFINE_string("teacher_flip", None, "rec2tfrecord: .npy (N, D) embeddings of the flipped "
                    "images.")
flags.DEFINE_bool("shuffle", True, "rec2tfrecord: write records in a seeded random order.")
flags.DEFINE_integer("seed", 0, "Seed for shuffling (rec2tfrecord) and generation (synthetic).")
flags.DEFINE_bool("strict", False, "Stop at the first corrupt image instead of skipping it.")
flags.DEFINE_bool("verify", True, "Test-decode every image while converting.")
flags.DEFINE_integer("label_index", 0, "Which float label is the class in multi-label .rec "
                     "files (-1 for MarginDistillation files).")
flags.DEFINE_integer("image_size", 112, "Aligned crop size.")
flags.DEFINE_float("min_score", 0.9, "align/pairs2bin: MTCNN confidence threshold.")
flags.DEFINE_integer("min_face_size", 20, "align: smallest face MTCNN looks for, in pixels.")
flags.DEFINE_string("pairs", None, "pairs2bin: pairs list (LFW pairs.txt or 'a b 0|1' lines).")
flags.DEFINE_string("images", None, "pairs2bin: root the pair paths are relative to.")
flags.DEFINE_bool("align", False, "pairs2bin: detect and align (MTCNN) images that are not "
                  "already 112x112 crops; without it such images are refused.")
flags.DEFINE_integer("identities", None, "synthetic: number of identities.")
flags.DEFINE_integer("images_per_identity", None, "synthetic: images per identity.")
flags.DEFINE_string("difficulty", None, "synthetic: 'easy' | 'medium' | 'hard' or "
                    "'NUISANCE,LIKENESS' (generator default if unset).")
flags.DEFINE_integer("workers", None, "synthetic: generator processes (default: all CPUs).")
flags.DEFINE_string("contact_sheet", None, "synthetic: also write a PNG contact sheet (5 "
                    "identities x 8 images) here; without --output, only the sheet.")
flags.DEFINE_bool("progress", True, "Show progress bars.")


def _need(*names):
    for name in names:
        if getattr(FLAGS, name) is None:
            raise app.UsageError(f"--{name} is required for task {FLAGS.task!r}")


def _exists(name):
    path = getattr(FLAGS, name)
    if not os.path.exists(path):
        raise ValueError(f"--{name}={path}: does not exist")
    return path


def _output(name="output", kind="dir"):
    """The output flag's path, refused before any work when it cannot be written."""
    path = getattr(FLAGS, name)
    if kind == "rec":  # a .rec file, or a directory that gets train.rec
        kind = "file" if path.endswith(".rec") else "dir"
    common.check_output(name, path, kind)
    return path


def run_task(task):
    """Run one task from the parsed flags; returns its summary (a dict)."""
    if task == "align":
        _need("input", "output")
        _output(kind="rec")
        from tfmargin.data.convert import align_photos
        return align_photos(_exists("input"), FLAGS.output, size=FLAGS.image_size,
                            min_score=FLAGS.min_score, min_face_size=FLAGS.min_face_size,
                            strict=FLAGS.strict, progress=FLAGS.progress)
    if task == "rec2tfrecord":
        _need("input", "output")
        _output()
        from tfmargin.data.convert import convert_to_tfrecord
        return convert_to_tfrecord(
            _exists("input"), FLAGS.output, num_shards=FLAGS.num_shards,
            teacher=FLAGS.teacher and _exists("teacher"),
            teacher_flip=FLAGS.teacher_flip and _exists("teacher_flip"), shuffle=FLAGS.shuffle,
            seed=FLAGS.seed, verify=FLAGS.verify, strict=FLAGS.strict,
            label_index=FLAGS.label_index, progress=FLAGS.progress)
    if task == "folders2rec":
        _need("input", "output")
        _output(kind="rec")
        from tfmargin.data.convert import convert_to_rec
        return convert_to_rec(_exists("input"), FLAGS.output, verify=FLAGS.verify,
                              strict=FLAGS.strict, image_size=FLAGS.image_size,
                              label_index=FLAGS.label_index, progress=FLAGS.progress)
    if task == "pairs2bin":
        _need("pairs", "images", "output")
        _output(kind="file")
        from tfmargin.data.pairs import pairs_to_bin
        return pairs_to_bin(_exists("pairs"), _exists("images"), FLAGS.output, align=FLAGS.align,
                            size=FLAGS.image_size, progress=FLAGS.progress)
    if task == "synthetic":
        if FLAGS.contact_sheet is None:
            _need("output", "identities", "images_per_identity")
        if FLAGS.output is not None:
            _output()
        if FLAGS.contact_sheet is not None:
            _output("contact_sheet", kind="file")
        from tfmargin.datasets.synthetic import contact_sheet, write_dataset  # heavy: only here
        options = {"seed": FLAGS.seed}
        if FLAGS.difficulty is not None:
            options["difficulty"] = FLAGS.difficulty
        if FLAGS.contact_sheet is not None:
            contact_sheet(FLAGS.contact_sheet, **options)
            if FLAGS.output is None:
                return {"contact_sheet": FLAGS.contact_sheet}
        _need("output", "identities", "images_per_identity")
        if FLAGS.workers is not None:
            options["workers"] = FLAGS.workers
        options["progress"] = FLAGS.progress
        options["log"] = lambda line: print(line, file=sys.stderr, flush=True)
        return write_dataset(FLAGS.output, FLAGS.identities, FLAGS.images_per_identity, **options)
    if task == "check":
        _need("input")
        from tfmargin.data.check import check_dataset
        return check_dataset(_exists("input"), strict=FLAGS.strict, progress=FLAGS.progress,
                             image_size=FLAGS.image_size)
    raise app.UsageError(f"unknown task {task!r}; one of {', '.join(TASKS)}")


def _format(summary):
    if isinstance(summary, dict):
        return ", ".join(f"{k}={v}" for k, v in summary.items() if not isinstance(v, (dict, list)))
    return str(summary)


def _prefix():
    return f"prepare {FLAGS.task}: " if FLAGS.task in TASKS else ""


@common.command(failure=(ValueError,), prefix=_prefix)  # our errors name the file / record
def main(argv):
    rest = argv[1:]
    task = FLAGS.task
    if rest:
        if task is not None and rest[0] != task:
            raise app.UsageError(f"task given twice: {rest[0]!r} and --task={task}")
        task, rest = rest[0], rest[1:]
    if rest:
        raise app.UsageError(f"unexpected arguments {rest}")
    if task is None:
        raise app.UsageError(f"which task? one of {', '.join(TASKS)}")
    if task not in TASKS:
        raise app.UsageError(f"unknown task {task!r}; one of {', '.join(TASKS)}")
    FLAGS.task = task
    summary = run_task(task)
    for name in getattr(summary, "skipped", ()):  # every left-out file, named
        print(f"prepare {task}: skipped {name}", file=sys.stderr)
    print(f"prepare {task}: {_format(summary)}")
    return 1 if task == "check" and summary.get("skipped_corrupt") else 0


def run():
    common.run(main)


if __name__ == "__main__":
    run()
