"""QAT: the tf_keras rebuild reproduces Keras 3, tfmot gets QuantizeConfigs for what it cannot
take by default, fine-tuning trains, and the int8 file gives real (non-constant) embeddings."""

import json
import os

import numpy as np
import pytest

from tests.export import reference as ref
from tests.export.conftest import tiny_student, trained_looking
from tests.train.fixtures import signal  # noqa: F401  (session fixture)


def test_rebuild_reproduces_keras3(backbone, held_out):
    from tfmargin.export import rebuild_tf_keras

    rebuilt = rebuild_tf_keras(backbone)
    # Same names; the embedding's BN is folded into its Dense.
    assert [l.name for l in rebuilt.layers] == [l.name for l in backbone.layers
                                                if l.name != "embedding_bn"]
    assert rebuilt.get_layer("embedding_dense").use_bias
    x = ref.to_float(held_out[0][:8]).astype(np.float32)
    a = np.asarray(backbone(x, training=False), np.float64)
    b = np.asarray(rebuilt(x, training=False), np.float64)
    assert np.max(np.abs(a - b)) <= 1e-5 * np.max(np.abs(a))


def test_prelu_grouped_rebuild_and_quantize_configs():
    """mbf-style width 2 + PReLU: GroupedConv2D and PReLU need this module's QuantizeConfigs."""
    import keras

    from tfmargin.export import TFKerasMismatchError, rebuild_tf_keras
    from tfmargin.export.qat import check_rebuild, quantize_model

    keras.utils.set_random_seed(3)
    model = trained_looking(tiny_student("prelu", width=2, name="mbf_tiny"))
    rebuilt = rebuild_tf_keras(model)
    assert any(type(l).__name__ == "GroupedConv2D" for l in rebuilt.layers)
    qat, custom = quantize_model(rebuilt)
    kinds = {type(model.get_layer(name)).__name__ for name in custom}
    assert kinds == {"PReLU", "GroupedConv2D", "BatchNormalization"}
    assert {name for name in custom if type(model.get_layer(name)).__name__ ==
            "BatchNormalization"} == {"stem_dw_bn"}  # the only BN behind a GroupedConv2D
    x = np.random.default_rng(0).uniform(-1, 1, (2, 112, 112, 3)).astype(np.float32)
    assert np.all(np.isfinite(np.asarray(qat(x, training=False))))
    # A rebuild that computes something else is refused.
    w = rebuilt.get_layer("stem_conv").get_weights()
    rebuilt.get_layer("stem_conv").set_weights([w[0] * 1.5])
    with pytest.raises(TFKerasMismatchError, match="mbf_tiny"):
        check_rebuild(model, rebuilt)


def test_qat_trained_and_gives_real_embeddings(exported, backbone, held_out):
    folder, paths = exported
    card = json.load(open(os.path.join(folder, "model_card.json")))
    qat = card["export"]["qat"]["qat_int8"]
    assert qat["steps"] == 4 and qat["head"] == "MarginDistillationHead"
    assert np.isfinite(qat["final_loss"]) and qat["rebuild_relative_error"] < 1e-5
    assert qat["calibrated_ranges"] > 0
    images = held_out[0][:16]
    out = ref.run_litert(paths["qat_int8"], images)
    spread = np.std(ref.unit(out), axis=0).mean()
    assert spread > 1e-3  # an uncalibrated / untrained QAT model outputs constants
    # The QAT file still embeds like the float model it was fine-tuned from.
    assert ref.cosines(out, ref.keras_embeddings(backbone, images)).mean() > 0.5
    assert qat["tflite_vs_qat_model_min_cosine"] > 0.98


def test_qat_needs_a_head_and_teacher(backbone, train_arrays, tmp_path):
    from tfmargin.export import ExportError, quantization_aware_training

    images, labels, teacher, _ = train_arrays
    with pytest.raises(ExportError, match="no margin head"):
        quantization_aware_training(backbone, tmp_path / "q.tflite", (images, labels), 1)
    assert not list(tmp_path.iterdir())


def test_qat_batches_carry_the_teacher_embeddings_of_a_signal_directory(signal):
    """`--qat_data=<teacher signal dir>`: a MarginDistillation student's QAT reads the teacher
    embeddings its shards hold, each beside its own image's label."""
    from tfmargin.data.tfrecord import tfrecord_dataset
    from tfmargin.export.qat import training_batches

    stored = {}
    for record in tfrecord_dataset(signal.directory).as_numpy_iterator():
        stored.setdefault(int(record["label"]), []).append(record["teacher"])
    images, labels, teacher = next(training_batches(signal.directory, batch_size=4))
    assert images.shape == (4, 112, 112, 3) and teacher.shape == (4, signal.embedding_size)
    for label, row in zip(labels, teacher):
        assert any(np.array_equal(row, t) for t in stored[int(label)])
