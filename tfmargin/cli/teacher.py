"""Extract a teacher signal: the teacher's class centers and its embedding of every training
image, as TFRecord shards with a manifest (tfmargin.distill).

    python -m tfmargin.cli.teacher --teacher=teacher.keras --data=faces_emore/train.rec \
        --output=faces_emore/teacher_r100 [--flip] [--batch_size=128] [--shards=N] \
        [--centers=centers.npy] [--shuffle --seed=0]

--teacher is the trained classifier (.keras, backbone + MarginHead) or its embedding backbone
(then --centers is required). --centers=class_means takes each class's mean teacher embedding
instead of a head: any teacher then works on data of identities it never saw (AdaDistill needs
nothing else). --data is a .rec (with its .idx), a directory holding train.rec,
or identity folders. --flip also stores the embeddings of the mirrored images, so that students
may train with flip augmentation. Every flag is checked before any image is read; a failure is
one line naming the flag. Ends with a one-line summary (images, classes, shards, seconds).

Resumable and shared: the work goes into `--output`.partial shard by shard; rerunning the same
command after a kill keeps every finished shard whose sha256 verifies and embeds the rest.
Several workers (processes or machines sharing the file system) split the shards:

    python -m tfmargin.cli.teacher ... --num_workers=4 --worker_index=I     # I = 0..3
    python -m tfmargin.cli.teacher --output=... --merge                     # or: the last one

The last worker to finish writes the manifest once every shard exists and verifies; `--merge`
does it explicitly (and fails, naming the first missing shard, while any is missing).
Exit codes: 0 done, 1 failed while working, 2 bad usage (one `error:` line on stderr); a
missing or malformed input flag exits with 1 as well.
"""

import os

from absl import app, flags

from tfmargin.cli import common

FLAGS = flags.FLAGS
flags.DEFINE_string("teacher", None, "Trained teacher: a .keras classifier (backbone + margin "
                    "head) or its embedding backbone.")
flags.DEFINE_string("data", None, "Training images: a .rec file, a directory with train.rec, or "
                    "identity folders.")
flags.DEFINE_string("output", None, "Directory for the signal (new, empty, or an earlier "
                    "signal, which is replaced only when the new one is complete).")
flags.DEFINE_bool("flip", False, "Also store the embeddings of the horizontally flipped images.")
flags.DEFINE_integer("batch_size", 128, "Images per teacher call (x2 with --flip).")
flags.DEFINE_integer("shards", None, "Number of TFRecord shards (default: about 200 MB each).")
flags.DEFINE_string("centers", None, "Optional (D, C) .npy of class centers, instead of the "
                    "teacher head's; or class_means: each class's mean teacher embedding (a "
                    "teacher that never saw these identities, e.g. for --method=adadistill).")
flags.DEFINE_bool("shuffle", False, "Write the records in a seeded random order (recommended "
                  "for identity-sorted .rec files such as MS1M) instead of the dataset's.")
flags.DEFINE_integer("seed", 0, "Seed of --shuffle.")
flags.DEFINE_bool("progress", True, "Show a progress bar.")
flags.DEFINE_integer("num_workers", 1, "Workers sharing this extraction (each embeds the shards "
                     "s with s % num_workers == worker_index).", lower_bound=1)
flags.DEFINE_integer("worker_index", 0, "This worker's index, 0..num_workers-1.", lower_bound=0)
flags.DEFINE_bool("merge", False, "Only write the manifest of an extraction whose shards are "
                  "all done (needs --output alone).")

# extract_teacher_signal argument -> the flag that sets it
_FLAG_OF = {"teacher": "teacher", "source": "data", "output_dir": "output", "centers": "centers",
            "batch_size": "batch_size", "shards": "shards", "num_workers": "num_workers",
            "worker_index": "worker_index"}


class FlagError(ValueError):  # a bad input flag, found before any work (exit 1)
    def __init__(self, flag, message):
        super().__init__(f"--{flag}: {message}")


def check_flags():
    """The checks that need no TensorFlow, in flag order; FlagError on the first failure."""
    if FLAGS.merge:
        if not FLAGS.output:
            raise FlagError("output", "is required")
        return
    for name in ("teacher", "data", "output"):
        if not getattr(FLAGS, name):
            raise FlagError(name, "is required")
    if not os.path.isfile(FLAGS.teacher):
        raise FlagError("teacher", f"{FLAGS.teacher}: no such file")
    if not os.path.exists(FLAGS.data):
        raise FlagError("data", f"{FLAGS.data}: does not exist")
    common.check_output("output", FLAGS.output, "dir")  # app.UsageError: exit 2
    if FLAGS.batch_size < 1:
        raise FlagError("batch_size", f"must be >= 1, got {FLAGS.batch_size}")
    if FLAGS.shards is not None and FLAGS.shards < 1:
        raise FlagError("shards", f"must be >= 1, got {FLAGS.shards}")
    if FLAGS.centers not in (None, "class_means") and not os.path.isfile(FLAGS.centers):
        raise FlagError("centers", f"{FLAGS.centers}: no such file")
    if FLAGS.worker_index >= FLAGS.num_workers:
        raise FlagError("worker_index", f"must be in 0..{FLAGS.num_workers - 1}, got "
                        f"{FLAGS.worker_index}")


def _describe(error):
    """A TeacherSignalError names the flag of the argument at fault."""
    flag = _FLAG_OF.get(getattr(error, "field", None))
    return f"--{flag}: {error}" if flag else str(error)


@common.command(failure=(FlagError,), describe=_describe)
def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    check_flags()

    from tfmargin.distill import extract_teacher_signal, merge_teacher_signal

    if FLAGS.merge:
        merge_teacher_signal(FLAGS.output, log=print)
        return 0
    extract_teacher_signal(  # a TeacherSignalError (exit 1) names the argument at fault
        FLAGS.teacher, FLAGS.data, FLAGS.output, centers=FLAGS.centers, flip=FLAGS.flip,
        batch_size=FLAGS.batch_size, shards=FLAGS.shards, shuffle=FLAGS.shuffle,
        seed=FLAGS.seed, progress=FLAGS.progress, num_workers=FLAGS.num_workers,
        worker_index=FLAGS.worker_index,
        log=print)  # its last line is the summary: images, classes, shards, seconds
    return 0


if __name__ == "__main__":
    common.run(main)
