"""`make demo`: the paper end to end on the embedded synthetic dataset (examples/demo/pipeline.py).

    python -m examples.demo --flagfile=flags/demo.cfg                 # MD vs ArcFace student
    python -m examples.demo --flagfile=flags/demo.cfg --methods=all   # + every baseline
    python -m examples.demo --flagfile=flags/bench_synthetic.cfg      # every method x 3 seeds

Every flag and the output paths are checked before any work; a bad one is one line naming it.
Exit codes: 0 done, 1 failed while working, 2 bad usage (one `error:` line on stderr).
"""

from absl import app, flags

from tfmargin.cli import common
from examples.demo import DemoConfig, ORDER

FLAGS = flags.FLAGS
_D = DemoConfig()
flags.DEFINE_string("output", _D.output_dir, "Results, students and the int8 export go here.")
flags.DEFINE_string("data", _D.data_dir, "Synthetic dataset directory (generated when absent "
                    "or made with other settings).")
flags.DEFINE_integer("identities", _D.identities, "Synthetic identities.")
flags.DEFINE_integer("images_per_identity", _D.images_per_identity, "Images per identity.")
flags.DEFINE_integer("data_seed", _D.data_seed, "Seed of the synthetic dataset.")
flags.DEFINE_string("difficulty", _D.difficulty, "easy | medium | hard | 'NUISANCE,LIKENESS'.")
flags.DEFINE_string("teacher", _D.teacher, "Teacher classifier .keras (backbone + ArcFace "
                    "head), or 'train' to train one first.")
flags.DEFINE_string("teacher_backbone", _D.teacher_backbone, "Backbone of a --teacher=train "
                    "teacher (and the label of the shipped one).")
flags.DEFINE_integer("teacher_steps", _D.teacher_steps, "Steps of a --teacher=train teacher.")
flags.DEFINE_integer("teacher_batch_size", _D.teacher_batch_size,
                     "Batch size of a --teacher=train teacher.")
flags.DEFINE_integer("teacher_softmax_warmup_steps", _D.teacher_softmax_warmup_steps,
                     "Margin-free softmax steps of a --teacher=train teacher.")
flags.DEFINE_integer("teacher_margin_ramp_steps", _D.teacher_margin_ramp_steps,
                     "Margin ramp steps of a --teacher=train teacher.")
flags.DEFINE_list("methods", list(_D.methods), f"Student methods, or 'all': {', '.join(ORDER)}.")
flags.DEFINE_string("student_backbone", _D.student_backbone, "Student backbone.")
flags.DEFINE_list("seeds", [str(s) for s in _D.seeds], "Training seeds; each method runs once "
                  "per seed.")
flags.DEFINE_integer("batch_size", _D.batch_size, "Batch size.")
flags.DEFINE_integer("steps", _D.steps, "Training steps per student.")
flags.DEFINE_integer("steps_per_epoch", _D.steps_per_epoch, "Steps between validations.")
flags.DEFINE_float("lr", _D.lr, "Peak learning rate (cosine schedule).")
flags.DEFINE_integer("lr_warmup_steps", _D.lr_warmup_steps, "Linear LR warm-up steps.")
flags.DEFINE_string("scale", str(_D.scale), "Logit scale of every student head: a number or "
                    "'auto' (AdaCos' sqrt(2)*ln(C-1)).")
flags.DEFINE_integer("softmax_warmup_steps", _D.softmax_warmup_steps, "Margin-free softmax "
                     "steps at the start of the margin-based students.")
flags.DEFINE_integer("margin_ramp_steps", _D.margin_ramp_steps, "Then the margin of the "
                     "margin-based students grows linearly over this many steps.")
flags.DEFINE_bool("export_int8", _D.export_int8, "Export the best student to int8 TFLite.")
flags.DEFINE_integer("calibration_images", _D.calibration_images, "int8 calibration images.")


def config_from_flags():
    """DemoConfig from the flags; ValueError('--flag: ...') on the first bad one (app.UsageError
    for an output path that cannot be written)."""
    import os

    methods = list(ORDER) if FLAGS.methods == ["all"] else FLAGS.methods
    for m in methods:
        if m not in ORDER:
            raise ValueError(f"--methods: unknown method {m!r}; known: {', '.join(ORDER)}, all")
    if any(m.startswith("triplet") for m in methods) and "arcface" not in methods:
        raise ValueError("--methods: the triplet methods fine-tune the ArcFace student; "
                         "add arcface")
    try:
        seeds = tuple(int(s) for s in FLAGS.seeds)
    except ValueError:
        raise ValueError(f"--seeds: expected integers, got {','.join(FLAGS.seeds)}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds: expected distinct integers, got {','.join(FLAGS.seeds)}")
    for name in ("identities", "images_per_identity", "batch_size", "steps", "steps_per_epoch",
                 "teacher_steps", "teacher_batch_size", "calibration_images"):
        if getattr(FLAGS, name) <= 0:
            raise ValueError(f"--{name}: must be > 0, got {getattr(FLAGS, name)}")
    if FLAGS.steps % FLAGS.steps_per_epoch:
        raise ValueError(f"--steps: {FLAGS.steps} is not a multiple of --steps_per_epoch "
                         f"{FLAGS.steps_per_epoch}")
    if FLAGS.teacher != "train" and not os.path.isfile(FLAGS.teacher):
        raise ValueError(f"--teacher: {FLAGS.teacher} does not exist (or use --teacher=train)")
    common.check_output("data", FLAGS.data, "dir")
    common.check_output("output", FLAGS.output, "dir")
    from tfmargin.train.config import ConfigError, parse_scale  # imports TensorFlow

    try:
        scale = parse_scale(FLAGS.scale)
    except ConfigError as e:
        raise ValueError(f"--{e}") from None
    return DemoConfig(
        output_dir=FLAGS.output, data_dir=FLAGS.data, identities=FLAGS.identities,
        images_per_identity=FLAGS.images_per_identity, data_seed=FLAGS.data_seed,
        difficulty=FLAGS.difficulty, teacher=FLAGS.teacher,
        teacher_backbone=FLAGS.teacher_backbone, teacher_steps=FLAGS.teacher_steps,
        teacher_batch_size=FLAGS.teacher_batch_size,
        teacher_softmax_warmup_steps=FLAGS.teacher_softmax_warmup_steps,
        teacher_margin_ramp_steps=FLAGS.teacher_margin_ramp_steps, scale=scale,
        margin_ramp_steps=FLAGS.margin_ramp_steps,
        methods=tuple(methods), student_backbone=FLAGS.student_backbone, seeds=seeds,
        batch_size=FLAGS.batch_size, steps=FLAGS.steps, steps_per_epoch=FLAGS.steps_per_epoch,
        lr=FLAGS.lr, lr_warmup_steps=FLAGS.lr_warmup_steps,
        softmax_warmup_steps=FLAGS.softmax_warmup_steps, export_int8=FLAGS.export_int8,
        calibration_images=FLAGS.calibration_images)


@common.command
def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    try:
        config = config_from_flags()
    except ValueError as e:  # a flag's value: bad usage
        raise app.UsageError(str(e)) from None
    import os

    from examples.demo import pipeline as demo

    results = demo.run(config)
    print()
    print(demo.format_results(results))
    print(f"\nwritten: {os.path.join(config.output_dir, 'results.md')}, results.json, roc.png")


if __name__ == "__main__":
    common.run(main)
