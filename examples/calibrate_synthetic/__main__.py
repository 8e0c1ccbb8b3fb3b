"""Calibrate the synthetic dataset's difficulty: model-free baselines, then a larger and a
smaller backbone trained the same way, each scored on test.bin.

    # model-free only (about a minute on 2 CPU cores):
    python -m examples.calibrate_synthetic --data=data/synthetic --model_free_only
    # the full check (generates the data first if --data has none; a GPU makes it minutes):
    python -m examples.calibrate_synthetic --data=data/synthetic --identities=600 \\
        --images_per_identity=20 --larger=iresnet18 --smaller=mobilefacenet --steps=3000

The output paths are checked before any work.
Exit codes: 0 done, 1 failed while working, 2 bad usage (one `error:` line on stderr).
"""

import json
import os

from absl import app, flags

from tfmargin.atomic import write_bytes
from tfmargin.cli import common

FLAGS = flags.FLAGS
flags.DEFINE_string("data", "data/synthetic", "Dataset directory (train.rec, test.bin, ...). "
                    "Generated there first when it holds no train.rec.")
flags.DEFINE_integer("identities", 600, "Identities to generate when --data is empty.")
flags.DEFINE_integer("images_per_identity", 20, "Images per identity to generate.")
flags.DEFINE_integer("seed", 0, "Generation and training seed.")
flags.DEFINE_string("difficulty", "medium", "Generation difficulty: easy | medium | hard | "
                    "'NUISANCE,LIKENESS'.")
flags.DEFINE_string("larger", "mbf", "The larger backbone (a tfmargin.models name).")
flags.DEFINE_string("smaller", "mobilefacenet", "The smaller backbone.")
flags.DEFINE_integer("steps", 2000, "SGD steps per backbone (sets the cosine schedule).")
flags.DEFINE_float("seconds", None, "Stop each training run after this many seconds.")
flags.DEFINE_integer("batch_size", 64, "Batch size.")
flags.DEFINE_float("learning_rate", 0.1, "Peak learning rate (SGD, momentum 0.9).")
flags.DEFINE_float("scale", 64.0, "ArcFace scale s.")
flags.DEFINE_float("margin", 0.5, "ArcFace additive angular margin m.")
flags.DEFINE_list("others", [], "Further backbones trained and scored the same way.")
flags.DEFINE_enum("feed", None, ["tfdata", "numpy"], "Training input: tf.data, or the set "
                  "decoded into memory (default where TensorFlow is missing, e.g. JAX on a GPU).")
flags.DEFINE_string("save_dir", None, "Save each trained classifier (backbone + ArcFace head) "
                    "here as NAME.keras.")
flags.DEFINE_bool("model_free_only", False, "Only the pixel and Fisherface baselines.")
flags.DEFINE_string("output", None, "Write the report as JSON here (default: "
                    "DATA/calibration.json).")


@common.command
def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    data = FLAGS.data
    generate = not os.path.exists(os.path.join(data, "train.rec"))
    if generate:
        common.check_output("data", data, "dir")
    output = FLAGS.output or os.path.join(data, "calibration.json")
    common.check_output("output", output, "file")
    if not FLAGS.model_free_only:
        common.check_output("save_dir", FLAGS.save_dir, "dir")

    from examples.calibrate_synthetic.calibrate import (calibrate, fisherface_verification,
                                                        pixel_verification)
    from tfmargin.datasets.synthetic import write_dataset

    if generate:
        print(f"[calibrate] generating {FLAGS.identities} x {FLAGS.images_per_identity} into "
              f"{data}", flush=True)
        write_dataset(data, FLAGS.identities, FLAGS.images_per_identity, seed=FLAGS.seed,
                      difficulty=FLAGS.difficulty, log=print, progress=True)
    if FLAGS.model_free_only:
        report = {"data_dir": data,
                  "pixels": pixel_verification(os.path.join(data, "test.bin")),
                  "fisherfaces": fisherface_verification(data)}
    else:
        report = calibrate(data, larger=FLAGS.larger, smaller=FLAGS.smaller, steps=FLAGS.steps,
                           seconds=FLAGS.seconds, batch_size=FLAGS.batch_size,
                           learning_rate=FLAGS.learning_rate, scale=FLAGS.scale,
                           margin=FLAGS.margin, seed=FLAGS.seed, others=FLAGS.others,
                           feed=FLAGS.feed, save_dir=FLAGS.save_dir)
    text = json.dumps(report, indent=2)
    print(text)
    write_bytes(output, (text + "\n").encode())
    print(f"written: {output}")


if __name__ == "__main__":
    common.run(main)
