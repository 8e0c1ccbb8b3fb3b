#!/usr/bin/env bash
# The GPU check (BUILD.md, "Training on a GPU"): tfmargin's JAX train step at arcface_torch's
# mbf shape (batch 512, 85,742 classes, bf16) with and without Partial FC, and the paper's
# student with the MarginDistillation head. For a machine with JAX but no TensorFlow:
#
#   KERAS_WHEEL=keras-3.15.1-py3-none-any.whl benchmarks/gpu_step.sh [--steps=20]
#
# KERAS_WHEEL (optional): a keras wheel carried to the machine, installed without its
# dependencies if keras is missing. Writes $OUT/gpu_step.json (OUT defaults to bench/results).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python -c "import keras" 2>/dev/null; then
  if [ -z "${KERAS_WHEEL:-}" ]; then
    echo "error: keras is not installed; give KERAS_WHEEL=path/to/keras-*.whl" >&2
    exit 2
  fi
  python -m pip install --quiet --no-deps "$KERAS_WHEEL" namex optree
fi
export KERAS_BACKEND=jax
python -m benchmarks.gpu_step --output="${OUT:-bench/results}/gpu_step.json" "$@"
