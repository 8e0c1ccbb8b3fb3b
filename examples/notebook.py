"""Execute docs/notebooks/margin_distillation.ipynb at full size and save it with its outputs
(what `make notebook` runs; `make test` runs it at toy size in tests/docs/test_notebook.py).

    python -m examples.notebook [--toy]
"""

import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "docs", "notebooks", "margin_distillation.ipynb")


def main(argv):
    import nbformat
    from nbclient import NotebookClient

    os.environ["TFMARGIN_NOTEBOOK_TOY"] = "1" if "--toy" in argv else "0"
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    started = time.perf_counter()
    NotebookClient(notebook, timeout=3600, kernel_name="python3",
                   resources={"metadata": {"path": ROOT}}).execute()
    if "--toy" not in argv:  # only a full-size run is committed
        nbformat.write(notebook, NOTEBOOK)
    print(f"{NOTEBOOK}: executed in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
