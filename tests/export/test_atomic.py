"""A failed export leaves nothing under the final name, and an earlier artifact intact."""

import os

import pytest


@pytest.fixture(scope="module")
def source(backbone):
    from tfmargin.export import TFLiteSource

    with TFLiteSource(backbone) as s:
        yield s


def test_failing_rename_leaves_nothing(source, tmp_path, monkeypatch):
    from tfmargin.export import export_tflite

    def fail(*_):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        export_tflite(source, tmp_path / "m.tflite", "fp32")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="permission bits do not bind root")
def test_read_only_destination(source, tmp_path):
    from tfmargin.export import export_tflite

    target = tmp_path / "ro"
    target.mkdir()
    target.chmod(0o555)
    try:
        with pytest.raises(PermissionError):
            export_tflite(source, target / "m.tflite", "fp32")
        assert list(target.iterdir()) == []
    finally:
        target.chmod(0o755)


def test_failed_saved_model_keeps_the_old_one(backbone, tmp_path, monkeypatch):
    from tfmargin.export import graph, saved_model

    old = tmp_path / "saved_model"
    old.mkdir()
    (old / "marker").write_text("previous export")

    def half_written(model, directory, *args, **kwargs):
        os.makedirs(directory)
        open(os.path.join(directory, "saved_model.pb"), "wb").write(b"partial")
        raise RuntimeError("killed mid-write (simulated)")

    monkeypatch.setattr(graph, "write_archive", half_written)
    with pytest.raises(RuntimeError, match="mid-write"):
        saved_model.export_saved_model(backbone, tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["saved_model"]
    assert os.listdir(old) == ["marker"]


def test_failing_onnx_destination(backbone, tmp_path):
    from tfmargin.export import export_onnx

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError):
        export_onnx(backbone, blocker / "m.onnx")
    assert os.listdir(tmp_path) == ["file"] and blocker.read_text() == "not a folder"
