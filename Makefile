# Two commands for users: `make demo` and `make test`. Both create .venv on first use.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# TensorFlow's C++ start-up chatter hides our own output.
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONUNBUFFERED := 1

# Test files whose tests run under both Keras backends (marked `backends`).
JAX_TEST_PATHS := tests/heads tests/losses tests/models tests/train tests/evaluate/test_callback.py

.PHONY: setup demo test test-tf test-jax bench clean

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
	$(PY) -m tfmargin.cli.demo --flagfile=flags/demo.cfg $(DEMO_FLAGS)

test: $(VENV)/.testdeps test-tf test-jax

test-tf: $(VENV)/.testdeps
	KERAS_BACKEND=tensorflow $(PY) -m pytest tests $(PYTEST_FLAGS)

test-jax: $(VENV)/.testdeps
	KERAS_BACKEND=jax $(PY) -m pytest -m backends $(JAX_TEST_PATHS) $(PYTEST_FLAGS)

bench: setup
	$(PY) -m tfmargin.cli.bench $(BENCH_FLAGS)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
