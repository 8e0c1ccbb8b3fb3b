"""Training: teachers with a margin softmax, the teacher signal, students by method.

    from tfmargin.train import TrainConfig, train, build_student, load_teacher_signal

    signal = extract_teacher_signal("teacher/classifier.keras", "data/train.rec", "data/signal")
    result = train(TrainConfig(method="margin_distillation", data="data/train.rec",
                               teacher_signal="data/signal", val_bin="data/val.bin",
                               steps=20_000, steps_per_epoch=1_000, output_dir="runs/md"))

Notebook use without `train`: `built = build_student(config, signal)` gives the compiled
classifier (`built.model`), its backbone and head; `training_data(config, signal)` the batches.
Importing this package does not import TensorFlow (the JAX path reads an .npz via ArrayFeed).
"""

from tfmargin.train.build import Built, build_student, build_teacher, classifier
from tfmargin.train.callbacks import StopOnNaN, TrainingDiverged
from tfmargin.train.config import METHODS, ConfigError, TrainConfig, validate
from tfmargin.data.feed import ArrayFeed, write_arrays
from tfmargin.train.inputs import training_data
from tfmargin.train.loop import TrainResult, load_signal, train
from tfmargin.train.methods import make_head
from tfmargin.train.sgd import CoupledSGD, build_optimizer
from tfmargin.train.schedule import WarmupSchedule, learning_rate
from tfmargin.distill import (TeacherSignal, TeacherSignalError, extract_teacher_signal,
                                   load_teacher_signal, teacher_centers)
from tfmargin.heads.warmup import SoftmaxWarmup

optimizer = build_optimizer  # the name before weight_decay_mode existed

__all__ = ["ArrayFeed", "build_optimizer", "build_student", "build_teacher", "Built",
           "classifier", "ConfigError", "CoupledSGD", "extract_teacher_signal", "learning_rate",
           "load_signal", "load_teacher_signal", "make_head", "METHODS", "optimizer",
           "SoftmaxWarmup", "StopOnNaN", "teacher_centers", "TeacherSignal",
           "TeacherSignalError", "train", "TrainConfig", "training_data", "TrainingDiverged",
           "TrainResult", "validate", "WarmupSchedule", "write_arrays"]
