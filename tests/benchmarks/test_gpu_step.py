"""benchmarks/gpu_step.py, the script prepared for a GPU machine without TensorFlow: run at
tiny size on this CPU under JAX with `import tensorflow` made to fail."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = ("import sys, runpy; sys.modules['tensorflow'] = None; "
          "sys.argv = ['gpu_step', '--quick', '--output', sys.argv[1]]; "
          "runpy.run_module('benchmarks.gpu_step', run_name='__main__')")


def test_gpu_step_runs_without_tensorflow(tmp_path):
    out = tmp_path / "gpu_step.json"
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT}
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(out)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(out.read_text())
    assert not report["tensorflow_imported"] and report["device"]
    assert set(report["results"]) == {"arcface", "arcface_pfc", "margin_distillation"}
    for v in report["results"].values():
        assert v["images_per_s"] > 0 and v["steps"] == 2 and v["final_loss"] > 0
    ratio = (report["results"]["arcface_pfc"]["images_per_s"]
             / report["results"]["arcface"]["images_per_s"])
    assert abs(report["pfc_speedup"] - ratio) < 1e-9
