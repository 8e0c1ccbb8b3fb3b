"""The arms of a comparison: a name, the training method it runs and what it changes.

Every arm trains the same student backbone on the same batches, schedule and seeds; an arm
only picks the method (tfmargin.train.registry) and, where the question needs it, the margin
or a starting point. `arcdistill_md_mean` is the control for MarginDistillation's per-sample
margin: ArcDistill (the same frozen teacher centers) with a constant margin equal to the mean
margin MarginDistillation gives the same images (`tfmargin.distill.mean_teacher_margin`), so
that the two differ in nothing but whether the margin varies per sample.
"""

import dataclasses

MD_MEAN = "md_mean"  # margin placeholder: MarginDistillation's mean margin on this data


@dataclasses.dataclass(frozen=True)
class Arm:
    name: str
    method: str
    margin: float | str | None = None  # None: the method's default; MD_MEAN: see above
    init_from: str | None = None       # fine-tune the backbone this arm trained (same seed)
    lr: float | None = None            # None: the comparison's learning rate
    images_per_identity: int = 0       # P x K batches of K (the batch size rounds to K's multiple)

    @property
    def title(self):
        from tfmargin.train.registry import get_method

        title = get_method(self.method).title
        if self.margin == MD_MEAN:
            return f"{title}, m = MarginDistillation's mean"
        if self.margin is not None:
            return f"{title}, m = {self.margin:g}"
        return title


ARMS = {}


def register_arm(arm):
    """Add (or replace) an arm; its name becomes valid in `CompareConfig.arms` / --arms."""
    ARMS[arm.name] = arm
    return arm


def get_arm(name):
    try:
        return ARMS[name]
    except KeyError:
        raise ValueError(f"arms: unknown arm {name!r}; known: {', '.join(ARMS)}") from None


CONTROL = "arcface"  # the arm every paired difference is taken against

for _arm in (
    Arm("arcface", "arcface"),
    Arm("arcface_init", "arcface_init"),
    Arm("arcdistill", "arcdistill", margin=0.5),
    Arm("arcdistill_md_mean", "arcdistill", margin=MD_MEAN),
    Arm("margin_distillation", "margin_distillation"),
    Arm("adadistill", "adadistill"),
    Arm("hinton_kd", "hinton_kd"),
    Arm("margin_kd_t", "margin_kd_t"),
    Arm("angular", "angular"),
    Arm("embedding", "embedding"),
    # triplet distillation fine-tunes the ArcFace student at lr 1e-3 over batches of 18 images
    # of each identity (Feng et al.)
    Arm("triplet_cos", "triplet_cos", init_from="arcface", lr=1e-3, images_per_identity=18),
    Arm("triplet_l2", "triplet_l2", init_from="arcface", lr=1e-3, images_per_identity=18),
):
    register_arm(_arm)

# The questions between two arms that the report answers with paired differences (same seeds,
# same batches), beside each arm's difference to the control: (arm, minus arm, question).
CONTRASTS = (
    ("margin_distillation", "arcdistill_md_mean",
     "MarginDistillation's per-sample margin vs a constant margin of the same mean"),
    ("margin_distillation", "arcdistill", "MarginDistillation vs ArcDistill (m = 0.5)"),
    ("arcdistill", "arcface_init", "the teacher's centers frozen vs trainable"),
    ("adadistill", "margin_distillation", "AdaDistill vs MarginDistillation"),
)

