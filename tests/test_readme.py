"""The documentation's examples run as written, and its relative links point at real files.

* The README's MarginDistillation example (the first ```python block after the heading
  "## MarginDistillation in a notebook") is executed and its margins checked.
* Every ```python block in docs/*.md whose fence line comes right after a line
  `<!-- test: runs -->` is executed, from the repository root, one test per (page, block).
  Mark only blocks that run in a few seconds on CPU, read no file that does not exist and
  write nothing into the repository; blocks that need datasets or trained models stay unmarked.
* Every `](path)` link in README.md and docs/*.md that is not http(s) and not an anchor must
  name an existing file or folder, relative to the page it is in.
"""

import glob
import os
import re

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARKER = "<!-- test: runs -->"
FENCE = "```python"
DOC_PAGES = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))
PAGES = ["README.md"] + DOC_PAGES


def _read(page):
    with open(os.path.join(ROOT, page), encoding="utf-8") as f:
        return f.read()


def python_blocks(text):
    """[(number, marked, code, line)] for every ```python block: number counts the page's
    ```python blocks from 1, marked says whether the line before the fence is the marker,
    line is the fence's line number (from 1)."""
    lines = text.split("\n")
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].strip() == FENCE:
            end = i + 1
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            marked = i > 0 and lines[i - 1].strip() == MARKER
            blocks.append((len(blocks) + 1, marked, "\n".join(lines[i + 1:end]) + "\n", i + 1))
            i = end
        i += 1
    return blocks


def stray_markers(text):
    """Line numbers of markers that are not directly followed by a ```python fence."""
    lines = text.split("\n")
    return [n + 1 for n, line in enumerate(lines)
            if line.strip() == MARKER and (n + 1 >= len(lines) or lines[n + 1].strip() != FENCE)]


RUNNABLE = [(page, number) for page in DOC_PAGES
            for number, marked, _, _ in python_blocks(_read(page)) if marked]


def test_readme_notebook_example_runs():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = text[text.index("## MarginDistillation in a notebook"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    head, t, y = namespace["head"], namespace["t"], namespace["y"]
    m = np.asarray(head.margins(t, y))
    assert m.shape == (64,) and abs(m.max() - 0.5) < 1e-6  # the closest sample gets m_max


@pytest.mark.parametrize("page,number", RUNNABLE,
                         ids=[f"{page}:python-block-{number}" for page, number in RUNNABLE])
def test_marked_docs_example_runs(page, number, monkeypatch):
    block = next(b for b in python_blocks(_read(page)) if b[0] == number)
    _, _, code, line = block
    where = f"{page}, python block {number} (fence on line {line})"
    monkeypatch.chdir(ROOT)
    try:
        exec(compile(code, where, "exec"), {"__name__": "__doc_example__"})
    except Exception as e:  # name the page; the traceback below still points into the block
        raise AssertionError(f"{where} failed: {type(e).__name__}: {e}") from e


@pytest.mark.parametrize("page", DOC_PAGES)
def test_run_markers_sit_on_python_fences(page):
    bad = stray_markers(_read(page))
    assert not bad, (f"{page}: '{MARKER}' on line(s) {bad} is not directly followed by a "
                     f"{FENCE} fence line")


def test_marker_and_block_parsing():
    text = "x\n```python\na = 1\n```\n" + MARKER + "\n```python\nb = 2\n```\n" + MARKER + "\ntext\n"
    blocks = python_blocks(text)
    assert [(n, marked, code) for n, marked, code, _ in blocks] == [
        (1, False, "a = 1\n"), (2, True, "b = 2\n")]
    assert stray_markers(text) == [9]


_FENCED = re.compile(r"^```.*?^```[ \t]*$", re.S | re.M)
_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def relative_links(text):
    """The targets of `](target)` links outside fenced code that are files, not URLs or anchors."""
    targets = _LINK.findall(_FENCED.sub("", text))
    return [t for t in targets if not re.match(r"^(https?:|mailto:|#)", t)]


@pytest.mark.parametrize("page", PAGES)
def test_relative_links_exist(page):
    base = os.path.dirname(os.path.join(ROOT, page))
    missing = [t for t in relative_links(_read(page))
               if not os.path.exists(os.path.join(base, t.split("#")[0]))]
    assert not missing, f"{page}: links to missing files: {missing}"


def test_comparison_numbers_come_from_the_committed_results():
    """Every number in the README's comparison table is in savedmodels/compare/results.md,
    which the committed run files rebuild (tests/cli/test_compare.py)."""
    readme = _read("README.md")
    start = readme.index("## Distillation methods compared")
    section = readme[start:readme.index("\n## ", start + 1)]
    rows = [line for line in section.split("\n") if line.startswith("| ") and "[" in line]
    assert len(rows) >= 6
    results = _read(os.path.join("savedmodels", "compare", "results.md"))
    for row in rows:  # the metric cells, in order, as one row of results.md has them
        cells = " | ".join(c.strip() for c in row.strip().strip("|").split("|")[1:])
        assert f" | {cells} |" in results, row
