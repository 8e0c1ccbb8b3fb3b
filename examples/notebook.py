"""Execute docs/notebooks/margin_distillation.ipynb at full size and save it with its outputs
(what `make notebook` runs; `make test` runs it at toy size in tests/docs/test_notebook.py).

    python -m examples.notebook [--toy]
"""

import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "docs", "notebooks", "margin_distillation.ipynb")


# TensorFlow's and LiteRT's native lines (written to fd 2 by C++, so a kernel captures them):
# the CLI filter's start-up lines, and the converter's and interpreter's own.
NOISE = ("fully_quantize:", "Created TensorFlow Lite XNNPACK delegate", "I0000 ", "W0000 ",
         "E0000 ", "INFO:tensorflow:")


def _without_native_chatter(notebook):
    from tfmargin.cli.quiet import STARTUP

    drop = tuple(s.decode() for s in STARTUP) + NOISE
    for cell in notebook.cells:
        kept = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                lines = [line for line in out["text"].splitlines(keepends=True)
                         if not any(d in line for d in drop)]
                if not "".join(lines).strip():
                    continue
                out["text"] = "".join(lines)
            kept.append(out)
        cell["outputs"] = kept
    return notebook


def main(argv):
    import nbformat
    from nbclient import NotebookClient

    os.environ["TFMARGIN_NOTEBOOK_TOY"] = "1" if "--toy" in argv else "0"
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    started = time.perf_counter()
    NotebookClient(notebook, timeout=3600, kernel_name="python3",
                   resources={"metadata": {"path": ROOT}}).execute()
    if "--toy" not in argv:  # only a full-size run is committed
        nbformat.write(_without_native_chatter(notebook), NOTEBOOK)
    print(f"{NOTEBOOK}: executed in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
