"""Backbones: sizes against published figures, shapes, saving, and the exporter-safe grouped conv."""

import keras
import numpy as np
import pytest
from keras import ops

from tfmargin.models import (GroupedConv2D, backbone_names, build_backbone, count_macs,
                             count_params, mobilefacenet)


def test_mobilefacenet_matches_the_paper():
    # Chen et al., "MobileFaceNets" (CCBR 2018), Table 1/2: 0.99M parameters, 221M MAdds for
    # the 128-d PReLU network on 112x112 input. Our count includes BN beta/gamma and PReLU
    # slopes, which the paper rounds differently: 2% tolerance on parameters.
    model = mobilefacenet(embedding_size=128, activation="prelu")
    trainable, _ = count_params(model)
    assert trainable == pytest.approx(0.99e6, rel=0.02)
    assert count_macs(model) == pytest.approx(221e6, rel=0.01)


def test_paper_student_size():
    # docs/method.md: the MarginDistillation student (width 1, ReLU, 512-d): 221M MACs,
    # 1.21M parameters; the 512-d embedding adds 512 x 384 weights to the paper's 128-d net.
    model = build_backbone("mobilefacenet")
    assert model.count_params() == pytest.approx(1.21e6, rel=0.01)
    assert count_macs(model) == pytest.approx(221e6, rel=0.01)


@pytest.mark.parametrize("name,mparams,gflops", [
    # OpenVINO Open Model Zoo model cards of insightface's MXNet models:
    # face-recognition-resnet34-arcface (LResNet34E-IR): 34.129 MParams, 8.934 GFLOPs;
    # face-recognition-resnet100-arcface-onnx (LResNet100E-IR): 65.1320 MParams, 24.2115 GFLOPs.
    ("iresnet34", 34.129, 8.934),
    ("iresnet100", 65.132, 24.2115),
])
def test_iresnet_matches_published_sizes(name, mparams, gflops):
    model = build_backbone(name)
    trainable, _ = count_params(model)
    assert trainable / 1e6 == pytest.approx(mparams, rel=0.002)
    # GFLOPs there count a multiply-add as two operations (and a little BN/PReLU work).
    assert 2 * count_macs(model) / 1e9 == pytest.approx(gflops, rel=0.005)


@pytest.mark.slow
@pytest.mark.backends
@pytest.mark.parametrize("name,kwargs", [("mobilefacenet", {}), ("mbf", {"embedding_size": 128}),
                                         ("iresnet18", {"embedding_size": 256})])
def test_shapes_and_keras_round_trip(name, kwargs, tmp_path, rng):
    model = build_backbone(name, **kwargs)
    x = rng.uniform(-1, 1, size=(2, 112, 112, 3)).astype("float32")
    out = model.predict(x, verbose=0)
    assert out.shape == (2, kwargs.get("embedding_size", 512)) and out.dtype == np.float32
    path = tmp_path / "b.keras"
    model.save(path)
    np.testing.assert_array_equal(keras.models.load_model(path).predict(x, verbose=0), out)


def _grouped_conv_reference(x, kernel, groups, stride):
    """float64 grouped 3x3 conv, 'same' padding, out[g*m + j] = sum_i in[g*k + i] * w."""
    x = np.asarray(x, np.float64)
    b, h, w, c = x.shape
    kh, kw, _, mult = kernel.shape  # depthwise layout (kh, kw, C, m)
    k = c // groups
    xp = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    out = np.zeros((b, h // stride, w // stride, groups * mult))
    for g in range(groups):
        for j in range(mult):
            acc = 0.0
            for i in range(k):
                cin = g * k + i
                for u in range(kh):
                    for v in range(kw):
                        acc = acc + xp[:, u:u + h:stride, v:v + w:stride, cin] * kernel[u, v, cin, j]
            out[..., g * mult + j] = acc
    return out


@pytest.mark.backends
def test_grouped_conv_matches_reference(rng):
    layer = GroupedConv2D(8, 3, groups=4)
    x = rng.normal(size=(2, 6, 6, 12)).astype("float32")
    y = ops.convert_to_numpy(layer(x))
    kernel = ops.convert_to_numpy(layer.depthwise.kernel)
    assert kernel.shape == (3, 3, 12, 2)  # the parameter count of a grouped conv: 3*3*(12/4)*8
    np.testing.assert_allclose(y, _grouped_conv_reference(x, kernel, 4, 1), atol=1e-4)


def test_grouped_conv_equals_keras_grouped_conv(rng):
    """The same function as Keras' Conv2D(groups=...), with weights mapped across."""
    x = rng.normal(size=(2, 8, 8, 6)).astype("float32")
    ours = GroupedConv2D(4, 3, groups=2)
    y = ops.convert_to_numpy(ours(x))
    dw = ops.convert_to_numpy(ours.depthwise.kernel)  # (3, 3, 6, 2)
    theirs = keras.layers.Conv2D(4, 3, groups=2, padding="same", use_bias=False)
    theirs.build(x.shape)
    k = np.zeros((3, 3, 3, 4), np.float32)  # (kh, kw, C/groups, filters)
    for g in range(2):
        for i in range(3):
            for j in range(2):
                k[:, :, i, g * 2 + j] = dw[:, :, g * 3 + i, j]
    theirs.set_weights([k])
    np.testing.assert_allclose(y, ops.convert_to_numpy(theirs(x)), atol=1e-5)


def test_registry():
    assert {"mobilefacenet", "mbf", "iresnet18", "iresnet50", "iresnet100", "r100"} <= set(backbone_names())
    assert build_backbone("mobilefacenet", embedding_size=64).output.shape == (None, 64)
    with pytest.raises(ValueError, match="unknown backbone 'resnet9'"):
        build_backbone("resnet9")
    with pytest.raises(ValueError, match="depth"):
        from tfmargin.models import iresnet
        iresnet(26)
