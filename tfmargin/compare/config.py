"""CompareConfig: what a comparison trains (arms x seeds), on what, and how each student is
trained. The field names are the flags of `python -m tfmargin.cli.compare`."""

import dataclasses
import os

from tfmargin.compare.arms import CONTROL, MD_MEAN, get_arm
from tfmargin.errors import TfmarginError


class CompareError(TfmarginError, ValueError):
    """A comparison setting that cannot work; the message starts with the field (flag) name."""


@dataclasses.dataclass
class CompareConfig:
    output_dir: str = "savedmodels/compare"  # results.json / results.md / plot, per-run JSON
    work_dir: str = "runs/compare"           # the teacher signal and the students (large)
    teacher: str = ""                        # the teacher classifier (.keras)
    data: str = ""                           # the training .rec: the teacher's identities
    val_bin: str = ""                        # logged during training, never used to select
    test_bin: str = ""                       # held-out identities: 10-fold accuracy
    identification: str = ""                 # other held-out identities: all-pairs 1:1, 1:N
    arms: tuple = ("arcface", "arcface_init", "arcdistill", "arcdistill_md_mean",
                   "margin_distillation", "adadistill")
    seeds: tuple = (0, 1, 2, 3, 4)
    # every arm's student: one recipe (an arm may change its margin or learning rate)
    backbone: str = "mobilefacenet"
    batch_size: int = 64
    steps: int = 400
    steps_per_epoch: int = 50
    lr: float = 0.1
    lr_warmup_steps: int = 20
    scale: float | str = "auto"
    softmax_warmup_steps: int = 40
    margin_ramp_steps: int = 120
    m_max: float = 0.5                       # MarginDistillation's margin range (the paper)
    m_min: float = 0.2
    weight_decay: float = 5e-4
    deterministic: bool = True               # repeatable runs: a rerun gives the same numbers
    verbose: int = 2

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        out = dataclasses.asdict(self)
        out["arms"], out["seeds"] = list(self.arms), list(self.seeds)
        return out

    def validate(self, check_files=True):
        """CompareError naming the first bad field; returns self."""
        if not self.arms:
            raise CompareError("arms: no arms given")
        if len(set(self.arms)) != len(self.arms) or len(set(self.seeds)) != len(self.seeds):
            raise CompareError("arms: an arm or a seed is listed twice")
        for name in self.arms:
            try:
                arm = get_arm(name)
            except ValueError as e:
                raise CompareError(str(e)) from None
            if arm.init_from and arm.init_from not in self.arms:
                raise CompareError(f"arms: {name} fine-tunes the {arm.init_from} arm's student; "
                                   f"add {arm.init_from} to --arms")
        if CONTROL not in self.arms:
            raise CompareError(f"arms: the control {CONTROL!r} is missing (every arm is "
                               "reported as a paired difference to it)")
        if not self.seeds:
            raise CompareError("seeds: no seeds given")
        for field in ("teacher", "data", "test_bin", "identification"):
            if not getattr(self, field):
                raise CompareError(f"{field}: required")
            if check_files and not os.path.exists(getattr(self, field)):
                raise CompareError(f"{field}: {getattr(self, field)} does not exist")
        if check_files and self.val_bin and not os.path.exists(self.val_bin):
            raise CompareError(f"val_bin: {self.val_bin} does not exist")
        for name in self.arms:  # every arm's schedule, before hours of work
            self.recipe(get_arm(name), self.seeds[0], "signal", 0.35)
        return self

    def student_dir(self, arm, seed):
        return os.path.join(self.work_dir, "students", arm, f"seed{seed}")

    def recipe(self, arm, seed, signal_dir, md_mean_margin, embedding_size=512):
        """The TrainConfig of `arm` (an Arm) at `seed`, embedding into the teacher's
        `embedding_size` dimensions (every arm, the control too); CompareError on a bad
        schedule."""
        from tfmargin.train import TrainConfig
        from tfmargin.train.config import ConfigError, validate, warmup_capable

        margin = md_mean_margin if arm.margin == MD_MEAN else arm.margin
        config = TrainConfig(
            role="student", method=arm.method, backbone=self.backbone,
            embedding_size=int(embedding_size), data=self.data,
            # the control reads the same shards as the distilled arms: the same batches
            teacher_signal=signal_dir, output_dir=self.student_dir(arm.name, seed),
            batch_size=self.batch_size, steps=self.steps, steps_per_epoch=self.steps_per_epoch,
            eval_every=self.steps, lr=arm.lr or self.lr, lr_schedule="cosine",
            lr_warmup_steps=self.lr_warmup_steps, scale=self.scale, margin=margin,
            m_max=self.m_max, m_min=self.m_min, weight_decay=self.weight_decay,
            weight_decay_mode="coupled", val_bin=self.val_bin, seed=int(seed),
            deterministic=self.deterministic, verbose=self.verbose)
        if warmup_capable(config):  # every margin arm: the same warm-up and ramp
            config = config.replace(softmax_warmup_steps=self.softmax_warmup_steps,
                                    margin_ramp_steps=self.margin_ramp_steps)
        if arm.init_from:
            config = config.replace(init_backbone=os.path.join(
                self.student_dir(arm.init_from, seed), "backbone.keras"))
        if arm.images_per_identity:  # P x K: the multiple of K nearest the batch size
            k = arm.images_per_identity
            config = config.replace(images_per_identity=k,
                                    batch_size=max(2, round(self.batch_size / k)) * k)
        try:
            return validate(config, check_files=False)
        except ConfigError as e:
            raise CompareError(str(e)) from None
