# Two commands for users: `make demo` and `make test`. Both create .venv on first use.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# TensorFlow's C++ start-up chatter hides our own output.
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONUNBUFFERED := 1

# The quick tier: the unit tests of the library's modules (not the CLIs, the export chain,
# the examples or the benchmarks), without the tests marked `slow`.
FAST_TEST_PATHS := tests/heads tests/margins tests/models tests/data tests/datasets tests/train \
	tests/distill tests/evaluate tests/test_pixels.py tests/test_atomic.py tests/test_old_paths.py
# Test files whose tests run under both Keras backends (marked `backends`).
JAX_TEST_PATHS := tests/heads tests/margins tests/models tests/train tests/distill tests/evaluate/test_callback.py

.PHONY: setup demo test test-fast test-tf test-jax lint bench notebook clean

$(VENV)/.runtime: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements.txt
	$(PIP) install -q --no-deps -e .
	touch $@

$(VENV)/.testdeps: $(VENV)/.runtime requirements-test.txt
	$(PIP) install -q -r requirements.txt -r requirements-test.txt
	touch $@

setup: $(VENV)/.runtime

demo: setup
	$(PY) -m examples.demo --flagfile=flags/demo.cfg $(DEMO_FLAGS)

# docs/notebooks/margin_distillation.ipynb executed at full size, outputs saved in place
notebook: $(VENV)/.testdeps
	$(PY) -m examples.notebook

test: $(VENV)/.testdeps lint test-tf test-jax

# The quick tier while working (< 3 min on 2 cores): no end-to-end run, no subprocess CLI,
# no export; `make test` (what CI runs) still runs everything.
test-fast: $(VENV)/.testdeps lint
	KERAS_BACKEND=tensorflow $(PY) -m pytest -m "not slow" $(FAST_TEST_PATHS) $(PYTEST_FLAGS)

# Layers only import downward: the contract is in pyproject.toml.
lint: $(VENV)/.testdeps
	$(VENV)/bin/lint-imports

test-tf: $(VENV)/.testdeps
	KERAS_BACKEND=tensorflow $(PY) -m pytest tests $(PYTEST_FLAGS)

test-jax: $(VENV)/.testdeps
	KERAS_BACKEND=jax $(PY) -m pytest -m backends $(JAX_TEST_PATHS) $(PYTEST_FLAGS)

bench: setup
	$(PY) -m benchmarks.run $(BENCH_FLAGS)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
