"""The README's MarginDistillation example runs as written."""

import os
import re

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_readme_notebook_example_runs():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = text[text.index("## MarginDistillation in a notebook"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    head, t, y = namespace["head"], namespace["t"], namespace["y"]
    m = np.asarray(head.margins(t, y))
    assert m.shape == (64,) and abs(m.max() - 0.5) < 1e-6  # the closest sample gets m_max
