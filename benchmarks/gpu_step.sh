#!/usr/bin/env bash
# The GPU check (BUILD.md, "Training on a GPU"): tfmargin's JAX train step at arcface_torch's
# mbf shape (batch 512, 85,742 classes, bf16) with and without Partial FC, and the paper's
# student with the MarginDistillation head. For a machine with JAX but no TensorFlow:
#
#   WHEELS=wheels/ benchmarks/gpu_step.sh [--steps=20]
#
# WHEELS (needed only when keras is missing): a folder carried to the machine holding the
# keras wheel and its small pure-Python dependencies (namex, optree, rich, ...): installed
# offline from there. Writes $OUT/gpu_step.json (OUT defaults to bench/results).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python -c "import keras" 2>/dev/null; then
  if [ -z "${WHEELS:-}" ]; then
    echo "error: keras is not installed; give WHEELS=folder with the keras wheel and its deps" >&2
    exit 2
  fi
  python -m pip install --quiet --no-index --find-links "$WHEELS" keras
fi
export KERAS_BACKEND=jax
python -m benchmarks.gpu_step --output="${OUT:-bench/results}/gpu_step.json" "$@"
