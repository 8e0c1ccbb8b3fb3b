"""docs/notebooks/margin_distillation.ipynb runs top to bottom (toy size) in a real Jupyter
kernel: a cell that raises fails the run. Its committed outputs come from `make notebook`."""

import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOTEBOOK = os.path.join(ROOT, "docs", "notebooks", "margin_distillation.ipynb")


def test_the_notebook_runs_at_toy_size(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient

    monkeypatch.setenv("TFMARGIN_NOTEBOOK_TOY", "1")
    monkeypatch.setenv("TFMARGIN_NOTEBOOK_DIR", str(tmp_path))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": ROOT}}).execute()  # raises on a failed cell
    outputs = "".join(o.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                      for o in cell.get("outputs", []))
    assert "best val accuracy" in outputs and "int8 on test.bin" in outputs
    assert '"cosine"' in outputs  # the face-ID verify lines
    assert os.path.exists(tmp_path / "student_int8.tflite")
