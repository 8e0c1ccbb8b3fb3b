"""Train a teacher or a student from flags: a thin absl wrapper over tfmargin.train.train.

    python -m tfmargin.cli.train --flagfile=flags/teacher_r100_ms1m.cfg
    python -m tfmargin.cli.train --flagfile=flags/student_mbf_margin_distillation_ms1m.cfg

Every flag is a TrainConfig field of the same name (see tfmargin/train/config.py). All flags
and --output_dir are checked before any work; a bad one prints one line naming it and exits
with status 2. Rerunning an interrupted command resumes it (BackupAndRestore under
--output_dir/backup).
Exit codes: 0 done, 1 failed while working, 2 bad usage (one `error:` line on stderr).
"""

import dataclasses

from absl import app, flags

from tfmargin.cli import common
from tfmargin.train.config import ConfigError, TrainConfig, parse_scale, validate
from tfmargin.train.registry import METHODS
from tfmargin.distill import TeacherSignalError  # loaded with tfmargin.train anyway

HELP = {
    "role": "teacher or student (a --method implies student).",
    "method": "Student method: " + ", ".join(METHODS) + ".",
    "head": "Teacher margin: arcface, cosface or sphereface.",
    "data": "Training images: a .rec (or its directory), TFRecord shards, identity folders, "
            "or an .npz of decoded arrays (the JAX path).",
    "teacher_signal": "Teacher signal directory (python -m tfmargin.cli.teacher); students "
                      "other than arcface need it.",
    "output_dir": "Where the models, logs and the resumable backup go.",
    "backbone": "Backbone name (tfmargin.models.backbone_names()).",
    "embedding_size": "Embedding dimension (a distilled student must match its teacher).",
    "init_backbone": "Start from these backbone weights (.keras), e.g. triplet fine-tuning "
                     "of an ArcFace student.",
    "image_size": "Input image side in pixels.",
    "num_classes": "Classes (0: the data's own count).",
    "scale": "Logit scale s, or 'auto': AdaCos' fixed scale sqrt(2)*ln(C-1) for C classes.",
    "margin": "Margin (default per head: ArcFace 0.5, CosFace 0.35, SphereFace 4).",
    "m_max": "MarginDistillation / triplet distillation: largest margin.",
    "m_min": "MarginDistillation / triplet distillation: smallest margin.",
    "d_max": "MarginDistillation D_max: 'batch' (the paper) or a fixed positive number.",
    "clip_margin": "MarginDistillation: clip margins to [m_min, m_max] (not in the paper).",
    "alpha": "Weight of the distillation term (default: angular 1, KD methods 0.95).",
    "temperature": "Distillation temperature T (margin_kd_t, hinton_kd).",
    "distance": "Embedding distillation distance: cos or l2.",
    "softmax_warmup_steps": "Train this many first steps without the margin.",
    "margin_ramp_steps": "After the softmax warm-up, grow the margin linearly from 0 to its "
                         "full value over this many steps (0: switch it on at once).",
    "weight_decay_mode": "coupled: wd*w joins the gradient before momentum, biases and "
                         "BatchNorm betas exempt (MXNet, the paper); decoupled: Keras' "
                         "SGD(weight_decay=), every variable.",
    "deterministic": "Seed everything and enable TensorFlow's op determinism: two runs of the "
                     "same command give the same weights (slower).",
    "batch_size": "Global batch size (over all replicas).",
    "images_per_identity": "Triplet methods: K images of each identity per batch.",
    "steps": "Optimizer steps in all.",
    "steps_per_epoch": "Steps per Keras epoch: the unit of logs, backups and resumption.",
    "lr": "Learning rate.",
    "lr_schedule": "piecewise (divide at --lr_steps) or cosine.",
    "lr_steps": "Piecewise schedule: steps at which the LR is multiplied by --lr_factor.",
    "lr_factor": "Piecewise schedule: LR multiplier at each of --lr_steps.",
    "lr_warmup_steps": "Linear LR warm-up steps.",
    "min_lr": "Cosine schedule: the final LR.",
    "momentum": "SGD momentum.",
    "weight_decay": "Weight decay.",
    "precision": "float32, mixed_float16 or mixed_bfloat16.",
    "flip": "Random horizontal flips (students only with a flip teacher signal).",
    "shuffle_buffer": "Examples in the shuffle buffer of TFRecord sources.",
    "seed": "Random seed (weights, data order, flips).",
    "sample_rate": "Partial FC: each step computes logits for the batch's classes and this "
                   "share of the others (1: every class), e.g. 0.1 at millions of identities.",
    "val_bin": "Validation .bin for model selection; must not be one of --test_bins.",
    "test_bins": "Reported verification .bins (evaluated, never used to select).",
    "eval_every": "Evaluate every this many steps.",
    "eval_batch_size": "Batch size of the verification embeddings.",
    "strategy": "default (one device); TensorFlow: mirrored (one machine) or multi_worker "
                "(the machines TF_CONFIG names; own loop, as Keras 3's fit cannot run "
                "there); JAX: data_parallel or model_parallel "
                "(keras.distribution, several hosts too; model_parallel shards the class "
                "centers over the devices).",
    "exact_resume": "On resume, skip the batches already seen (identical stream; costs a "
                    "decode pass over them) instead of reseeding.",
    "verbose": "Keras fit verbosity (0, 1, 2).",
}
SKIPPED = {"backbone_kwargs"}  # dicts are for notebooks


def define_flags(flag_values=flags.FLAGS):
    """Define one flag per TrainConfig field on `flag_values`."""
    common.define_dataclass_flags(TrainConfig, HELP, flag_values, skipped=SKIPPED,
                                  strings=("scale",), floats=("margin", "alpha"))


def config_from_flags(flag_values=flags.FLAGS):
    """The TrainConfig the parsed flags describe (not yet validated)."""
    values = {}
    for field in dataclasses.fields(TrainConfig):
        if field.name in SKIPPED:
            continue
        values[field.name] = flag_values[field.name].value
    try:
        values["lr_steps"] = tuple(int(s) for s in values["lr_steps"])
    except ValueError:
        raise ConfigError(f"lr_steps: expected step numbers, got {values['lr_steps']}") from None
    values["test_bins"] = tuple(values["test_bins"])
    values["scale"] = parse_scale(values["scale"])
    if flag_values["method"].present:
        if flag_values["role"].present and values["role"] == "teacher":
            raise ConfigError("role: a teacher takes --head, not --method")
        values["role"] = "student"
    return TrainConfig(**values)


def _describe(error):
    """ConfigError("field: ...") -> "--field: ..."; a bad teacher signal names its flag."""
    if isinstance(error, ConfigError):
        return f"--{error}"
    if isinstance(error, TeacherSignalError):
        return f"--teacher_signal: {error}"
    return str(error)


@common.command(usage=(ConfigError, TeacherSignalError), describe=_describe)
def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {' '.join(argv[1:])}")
    config = validate(config_from_flags(), check_files=True)
    common.check_output("output_dir", config.output_dir, "dir")
    if config.deterministic:
        import keras

        if keras.backend.backend() == "tensorflow":
            from tfmargin.train.determinism import prepare

            prepare()  # before TensorFlow's first op, which nothing above has run
    from tfmargin.train.loop import train

    result = train(config)  # TrainingDiverged (a TfmarginError): exit 1
    for name, path in result.paths.items():
        print(f"{name}: {path}")
    if result.best:
        print(f"best {result.best['set']} accuracy {100 * result.best['accuracy']:.2f}% at step "
              f"{result.best['step']}: {result.best['backbone']}")
    return 0


define_flags()

if __name__ == "__main__":
    common.run(main)
