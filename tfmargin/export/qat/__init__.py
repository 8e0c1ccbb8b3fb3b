"""Quantisation-aware training (QAT) with tensorflow-model-optimization: the only module that
imports tf_keras / tfmot (they accept nothing but tf_keras models; docs/toolchain.md).

    path, info = quantization_aware_training(trained_model, "student_qat_int8.tflite",
                                             data="data/train.rec", teacher="teacher.npy",
                                             steps=2000)

1. rebuild_tf_keras: the Keras 3 backbone is rebuilt layer by layer in tf_keras from its own
   config (same layer names), its weights are copied by name, and the rebuild must reproduce
   the Keras 3 outputs (TFKerasMismatchError otherwise). The embedding's Dense + BN is folded
   into one Dense (tfmot leaves that pair unfused: a float island in the int8 file).
2. quantize_model: every layer is annotated for tfmot; what its default 8-bit registry cannot
   quantise gets a QuantizeConfig here: PReLU (alpha quantised like a weight, output by moving
   average) and tfmargin's GroupedConv2D (a tf_keras twin whose depthwise kernel is quantised).
3. calibrate_ranges: the activation ranges, which tfmot starts at +-6 and moves by an EMA of
   decay 0.999 (so a short fine-tune would keep them wrong), are set from real batches.
4. fine_tune: N steps of the student's own loss, through its own head (the Keras 3 layer of the
   trained model, so the margin math is tfmargin.heads'): the MarginDistillation head with
   the frozen teacher centers and the batch's teacher embeddings, or the ArcFace head with its
   own (frozen) centers. BatchNorm statistics stay frozen (small fine-tuning batches would
   corrupt them). QAT must start from a trained float model.
5. The fake-quantised model converts to a full-integer TFLite file (float I/O with the
   normalisation kept float, or integer I/O), checked for Flex ops and against the QAT model.

tf_keras.py (1), annotate.py (2), ranges.py (3), finetune.py (4), convert.py (5 and the whole
recipe, quantization_aware_training).
"""

from tfmargin.export.qat.annotate import quantize_model
from tfmargin.export.qat.convert import convert_qat, quantization_aware_training
from tfmargin.export.qat.finetune import fine_tune, training_batches
from tfmargin.export.qat.ranges import calibrate_ranges
from tfmargin.export.qat.tf_keras import (REBUILD_RTOL, TFKerasMismatchError, check_rebuild,
                                          rebuild_tf_keras)

__all__ = ["REBUILD_RTOL", "TFKerasMismatchError", "calibrate_ranges", "check_rebuild",
           "convert_qat", "fine_tune", "quantization_aware_training", "quantize_model",
           "rebuild_tf_keras", "training_batches"]
