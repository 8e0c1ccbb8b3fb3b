"""Row-wise L2 normalisation for numpy embeddings, shared by every metric."""

import numpy as np


def unit_rows(x):
    """x / |x| per row (dtype kept); an all-zero row stays zero instead of becoming NaN."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
