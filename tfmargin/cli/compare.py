"""Compare distillation methods on equal terms: a thin absl wrapper over
tfmargin.compare.run_comparison.

    python -m tfmargin.cli.compare --flagfile=flags/compare_synthetic.cfg
    python -m tfmargin.cli.compare --flagfile=flags/compare_synthetic.cfg --seeds=0,1 \
        --arms=arcface,arcdistill,margin_distillation        # a smaller run

Every arm (--arms) trains the same student recipe at every seed (--seeds) from one teacher
signal, so that runs of one seed see the same batches in the same order; each student is
evaluated on held-out identities (--test_bin: 10-fold accuracy; --identification: TAR at FAR
1e-3 / 1e-4 over every pair, and rank-1). Writes --output_dir/results.json, results.md and
results.png after every finished run. Rerunning the same command resumes: finished runs are
kept, an interrupted student continues from its last epoch. Every flag is a CompareConfig field
of the same name (tfmargin/compare/config.py); all are checked before any work, and a bad one is
one line naming it.
Exit codes: 0 done, 1 failed while working, 2 bad usage (one `error:` line on stderr).
"""

from absl import app, flags

from tfmargin.cli import common
from tfmargin.compare.arms import ARMS
from tfmargin.compare.config import CompareConfig, CompareError

HELP = {
    "output_dir": "Where results.json / results.md / results.png and one JSON per finished "
                  "run go (small; commit them).",
    "work_dir": "Where the teacher signal and the students' models go (large).",
    "teacher": "The teacher classifier (.keras: backbone + margin head).",
    "data": "Training images (.rec): the identities the teacher was trained on.",
    "val_bin": "Logged during training (never used to select a model).",
    "test_bin": "Held-out identities: insightface 10-fold accuracy.",
    "identification": "Other held-out identities (.npz with probe/gallery/distractors and "
                      "their labels): all-pairs TAR@FAR and rank-1.",
    "arms": "Arms to train: " + ", ".join(ARMS) + ".",
    "seeds": "Seeds; every arm runs at each (at least 5 for intervals worth reading).",
    "backbone": "Student backbone.",
    "batch_size": "Batch size.",
    "steps": "Optimizer steps per student.",
    "steps_per_epoch": "Steps per Keras epoch: the unit of resumption.",
    "lr": "Learning rate (cosine schedule); triplet arms fine-tune at 1e-3.",
    "lr_warmup_steps": "Linear LR warm-up steps.",
    "scale": "Logit scale, or 'auto' (AdaCos' fixed scale for the class count).",
    "softmax_warmup_steps": "Margin arms: steps without the margin.",
    "margin_ramp_steps": "Margin arms: then the margin grows linearly over these steps.",
    "m_max": "MarginDistillation's largest margin.",
    "m_min": "MarginDistillation's smallest margin.",
    "weight_decay": "Weight decay (coupled, as the paper).",
    "deterministic": "TensorFlow op determinism: a rerun gives the same numbers (slower).",
    "verbose": "Keras fit verbosity of each student (0, 1, 2).",
}




def define_flags(flag_values=flags.FLAGS):
    """Define one flag per CompareConfig field on `flag_values`."""
    common.define_dataclass_flags(CompareConfig, HELP, flag_values, strings=("scale",))
    flags.DEFINE_bool("report_only", False, "Only rewrite results.json / .md / .png from the run "
                      "files in --output_dir (no teacher, data or training needed).",
                      flag_values=flag_values)


FLAGS = flags.FLAGS


def config_from_flags(flag_values=FLAGS):
    """The CompareConfig the parsed flags describe (not yet validated)."""
    import dataclasses

    from tfmargin.train.config import ConfigError, parse_scale

    values = {f.name: flag_values[f.name].value for f in dataclasses.fields(CompareConfig)}
    values["arms"] = tuple(values["arms"])
    try:
        values["seeds"] = tuple(int(s) for s in values["seeds"])
    except ValueError:
        raise CompareError(f"seeds: expected integers, got {values['seeds']}") from None
    try:
        values["scale"] = parse_scale(values["scale"])
    except ConfigError as e:
        raise CompareError(str(e)) from None
    return CompareConfig(**values)


@common.command(usage=(CompareError,), describe=lambda e: f"--{e}"
                if isinstance(e, CompareError) else str(e))
def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {' '.join(argv[1:])}")
    config = config_from_flags()
    if FLAGS.report_only:
        from tfmargin.compare.report import format_markdown
        from tfmargin.compare.run import report_results

        print(format_markdown(report_results(config.validate(check_files=False))))
        return 0
    config.validate()
    common.check_output("output_dir", config.output_dir, "dir")
    common.check_output("work_dir", config.work_dir, "dir")
    if config.deterministic:
        import keras

        if keras.backend.backend() == "tensorflow":
            from tfmargin.train.determinism import prepare

            prepare()  # before TensorFlow's first op
    from tfmargin.compare.report import format_markdown
    from tfmargin.compare.run import run_comparison

    results = run_comparison(config)
    print(format_markdown(results))
    return 0


if __name__ == "__main__":
    define_flags()  # here, not at import: tests and notebooks import this module beside others
    common.run(main)
