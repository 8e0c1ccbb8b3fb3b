"""TrainConfig: every field of a training recipe, with the paper's defaults, and its checks.

The field names are the flag names of `python -m tfmargin.cli.train`, so an error names both:
`ConfigError("lr_steps: ...")` is printed by the CLI as `--lr_steps: ...`.
"""

import dataclasses
import math
import os
from typing import Any

from tfmargin.errors import TfmarginError
from tfmargin.train.registry import METHODS as REGISTRY
from tfmargin.train.registry import get_method, method_names

ROLES = ("teacher", "student")
METHODS = method_names()  # the built-in methods (tfmargin.train.registry holds them all)
TEACHER_HEADS = ("arcface", "cosface", "sphereface")
SCHEDULES = ("piecewise", "cosine")
WEIGHT_DECAY_MODES = ("coupled", "decoupled")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("default", "mirrored", "multi_worker", "data_parallel", "model_parallel")
DISTANCES = ("cos", "l2")


class ConfigError(TfmarginError, ValueError):
    """A recipe field (a CLI flag) with a bad value; the message starts with the field name."""


@dataclasses.dataclass
class TrainConfig:
    """A training run. Defaults are the paper's student recipe (docs/method.md): MobileFaceNet
    (ReLU, 512-d), SGD 0.1, momentum 0.9, weight decay 5e-4, batch 512, LR / 10 at 100k, 160k,
    220k steps. `role="teacher"` trains `backbone` with the `head` margin instead.

    Sizes: `steps` optimizer steps in all, grouped in Keras epochs of `steps_per_epoch` steps
    (the unit of checkpoints, logs and resumption); verification every `eval_every` steps.
    """

    role: str = "student"
    method: str = "margin_distillation"
    head: str = "arcface"                   # teacher margin: arcface | cosface | sphereface
    data: str = ""                          # .rec / dir with train.rec / TFRecord shards / folders / .npz
    teacher_signal: str = ""                # directory written by extract_teacher_signal
    output_dir: str = "runs/train"
    backbone: str = "mobilefacenet"
    embedding_size: int = 512
    backbone_kwargs: dict = dataclasses.field(default_factory=dict)  # extra build_backbone args
    init_backbone: str = ""                 # start from these backbone weights (.keras)
    image_size: int = 112
    num_classes: int = 0                    # 0: the data's own count
    # heads
    scale: float | str = 64.0               # or "auto": AdaCos' fixed scale for the class count
    margin: float | None = None             # None: the head's default (0.5 / 0.35 / 4)
    m_max: float = 0.5
    m_min: float = 0.2
    d_max: str = "batch"                    # "batch" (the paper) or a positive number
    clip_margin: bool = False
    alpha: float | None = None              # None: angular 1.0, margin_kd_t / hinton_kd 0.95
    temperature: float = 4.0
    distance: str = "cos"                   # embedding distillation: cos | l2
    softmax_warmup_steps: int = 0           # plain (margin-free) softmax for these first steps
    margin_ramp_steps: int = 0              # then the margin grows linearly from 0 over these
    sample_rate: float = 1.0                # Partial FC: share of the negative classes per step
    # optimisation
    batch_size: int = 512                   # global, over all replicas
    images_per_identity: int = 4            # K of the P x K batches of the triplet methods
    steps: int = 240_000
    steps_per_epoch: int = 2_000
    lr: float = 0.1
    lr_schedule: str = "piecewise"
    lr_steps: tuple = (100_000, 160_000, 220_000)
    lr_factor: float = 0.1
    lr_warmup_steps: int = 0
    min_lr: float = 0.0                     # cosine: the final learning rate
    momentum: float = 0.9
    weight_decay: float = 5e-4
    weight_decay_mode: str = "coupled"      # coupled (MXNet, the paper) | decoupled (Keras)
    precision: str = "float32"
    # data
    flip: bool = False
    shuffle_buffer: int = 10_000
    seed: int = 0
    deterministic: bool = False             # TF op determinism: repeatable runs, slower
    # evaluation and bookkeeping
    val_bin: str = ""                       # model selection; never a reported set
    test_bins: tuple = ()                   # reported sets (evaluated, never selected on)
    eval_every: int = 4_000
    eval_batch_size: int = 128
    strategy: str = "default"
    exact_resume: bool = True               # on resume, skip the batches already trained on
    verbose: int = 1

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        out = dataclasses.asdict(self)
        out["lr_steps"], out["test_bins"] = list(self.lr_steps), list(self.test_bins)
        return out

    @classmethod
    def from_dict(cls, d):
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"{unknown[0]}: not a TrainConfig field")
        d = dict(d)
        for key in ("lr_steps", "test_bins"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)

    @property
    def needs_teacher(self):
        """Whether the run needs a teacher signal (every student method but the control)."""
        method = get_method(self.method)
        return self.role == "student" and (method.reads_teacher or method.needs_centers)

    @property
    def reads_teacher_embeddings(self):
        """Whether its batches carry the teacher's embeddings (the head's third input)."""
        return self.role == "student" and get_method(self.method).reads_teacher

    @property
    def triplet(self):
        """Whether the run draws P x K identity batches."""
        return self.role == "student" and get_method(self.method).identity_batches


def _fail(field, message):
    raise ConfigError(f"{field}: {message}")


def _one_of(c, field, allowed):
    value = getattr(c, field)
    if value not in allowed:
        _fail(field, f"{value!r} is not one of {', '.join(allowed)}")


def _positive(c, *fields, allow_zero=False):
    for field in fields:
        value = getattr(c, field)
        if not isinstance(value, (int, float)) or value < 0 or (value == 0 and not allow_zero):
            _fail(field, f"must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def validate(c: TrainConfig, *, check_files=True) -> TrainConfig:
    """Check every field; the first problem raises ConfigError naming its field. Returns c.

    `check_files=False` skips the checks that need the files to exist (for recipes with
    placeholder paths)."""
    _one_of(c, "role", ROLES)
    if c.role == "student":
        _one_of(c, "method", method_names())
    else:
        _one_of(c, "head", TEACHER_HEADS)
    _one_of(c, "lr_schedule", SCHEDULES)
    _one_of(c, "precision", PRECISIONS)
    _one_of(c, "strategy", STRATEGIES)
    if c.role == "student" and c.strategy in ("mirrored", "multi_worker") \
            and not get_method(c.method).replicas:
        _fail("strategy", f"method {c.method} updates its class centers inside the step, which "
              "tf.distribute replicas would each do on their own share: use --strategy=default "
              "(or data_parallel / model_parallel on JAX, where the step is one program)")
    if c.strategy == "multi_worker" and c.precision == "mixed_float16":
        _fail("precision", "mixed_float16's loss scaling decides on each worker alone whether "
              "to apply a step, and workers that disagree wait on each other for ever under "
              "multi_worker: use mixed_bfloat16 or float32")
    if c.strategy == "multi_worker" and str(c.data).endswith(".npz"):
        _fail("data", "under multi_worker each worker reads its own share of a .rec or TFRecord "
              f"source; an .npz feed ({c.data}) cannot be split over workers")
    if not 0.0 < c.sample_rate <= 1.0:
        _fail("sample_rate", f"must be in (0, 1], got {c.sample_rate}")
    if c.sample_rate < 1.0 and c.role == "student" and not get_method(c.method).partial_fc:
        _fail("sample_rate", f"method {c.method} has no class-center softmax to sample (its "
              "objective compares whole distributions or embeddings): use 1")
    _one_of(c, "distance", DISTANCES)
    _one_of(c, "weight_decay_mode", WEIGHT_DECAY_MODES)
    parse_scale(c.scale)
    _positive(c, "embedding_size", "image_size", "batch_size", "steps", "steps_per_epoch",
              "eval_every", "eval_batch_size", "lr", "temperature", "lr_factor",
              "images_per_identity", "shuffle_buffer")
    _positive(c, "num_classes", "softmax_warmup_steps", "margin_ramp_steps", "lr_warmup_steps", "min_lr",
              "momentum", "weight_decay", "m_min", allow_zero=True)
    if c.steps % c.steps_per_epoch:
        _fail("steps_per_epoch", f"{c.steps_per_epoch} does not divide steps ({c.steps})")
    if c.m_max < c.m_min:
        _fail("m_max", f"{c.m_max} must be >= m_min ({c.m_min})")
    if c.d_max != "batch":
        try:
            if float(c.d_max) <= 0:
                raise ValueError
        except (TypeError, ValueError):
            _fail("d_max", f"must be 'batch' or a positive number, got {c.d_max!r}")
    if c.alpha is not None:
        top = get_method(c.method).alpha_max
        if c.alpha < 0 or (top is not None and c.alpha > top):
            _fail("alpha", f"must be {f'in [0, {top:g}]' if top is not None else '>= 0'}, "
                  f"got {c.alpha}")
    steps = list(c.lr_steps)
    if any(not isinstance(s, int) or s <= 0 for s in steps) or steps != sorted(set(steps)):
        _fail("lr_steps", f"must be increasing positive step numbers, got {steps}")
    if c.lr_schedule == "cosine" and c.lr_warmup_steps >= c.steps:
        _fail("lr_warmup_steps", f"{c.lr_warmup_steps} leaves no step of the {c.steps} to decay")
    if c.min_lr > c.lr:
        _fail("min_lr", f"{c.min_lr} is above lr {c.lr}")
    for field in ("softmax_warmup_steps", "margin_ramp_steps"):
        if getattr(c, field) and not warmup_capable(c):
            capable = ", ".join(m.name for m in REGISTRY.values() if m.has_margin)
            _fail(field, f"method {c.method} has no margin to warm up (only teachers and the "
                  f"{capable} students)")
    if c.triplet:
        k = c.images_per_identity
        if k < 2 or c.batch_size % k or c.batch_size // k < 2:
            _fail("images_per_identity", f"triplet batches need K >= 2 images of each of at "
                  f"least 2 identities with batch_size divisible by K; got K={k}, "
                  f"batch_size={c.batch_size}")
    if c.needs_teacher and not c.teacher_signal:
        _fail("teacher_signal", f"method {c.method} needs the teacher's signal directory")
    if not c.data:
        _fail("data", "no training data given")
    if c.val_bin and any(_same_file(c.val_bin, t) for t in c.test_bins):
        _fail("val_bin", f"{c.val_bin} is also a reported test set (test_bins); select models "
              "on a held-out validation split, never on a set you report")
    if not c.output_dir:
        _fail("output_dir", "no output directory given")
    if check_files:
        for field in ("data", "teacher_signal", "val_bin", "init_backbone"):
            path = getattr(c, field)
            if path and not os.path.exists(path):
                _fail(field, f"{path} does not exist")
        for path in c.test_bins:
            if not os.path.isfile(path):
                _fail("test_bins", f"{path} does not exist")
    return c


def warmup_capable(c):
    """Whether the run's head has a margin that a softmax warm-up / ramp can hold back."""
    return c.role == "teacher" or get_method(c.method).has_margin



def parse_scale(value):
    """A logit scale: "auto" or a finite positive number (also given as a string, as flags
    are); ConfigError("scale: ...") otherwise."""
    if value == "auto":
        return value
    try:
        scale = float(value)
    except (TypeError, ValueError):
        scale = float("nan")
    if isinstance(value, bool) or not math.isfinite(scale) or scale <= 0:
        _fail("scale", f"must be a positive number or 'auto', got {value!r}")
    return scale


def method_defaults(c: TrainConfig) -> dict[str, Any]:
    """The margin / alpha a head gets when the config leaves them None."""
    margin = c.margin
    if margin is None:
        margin = {"cosface": 0.35, "sphereface": 4.0}.get(c.head, 0.5) if c.role == "teacher" else 0.5
    alpha = c.alpha
    if alpha is None:
        alpha = get_method(c.method).alpha if c.role == "student" else None
        alpha = 0.95 if alpha is None else alpha
    return {"margin": float(margin), "alpha": float(alpha)}


def resolve_scale(c: TrainConfig, num_classes) -> float:
    """The logit scale: `c.scale`, or for "auto" AdaCos' fixed scale for `num_classes`."""
    if c.scale == "auto":
        from tfmargin.margins import adacos_scale

        return adacos_scale(num_classes)
    return float(c.scale)
