"""All-pairs 1:1 verification among held-out identities (IJB-C style), streamed.

Every pair of images is compared: pairs of one identity are genuine, pairs of two identities
impostors. With N images there are N (N - 1) / 2 pairs (3,000 images: 4.5 M impostor pairs),
so FAR = 1e-4 rests on hundreds of false accepts instead of a handful, unlike the 3,000
impostor pairs of a 10-fold .bin.

The operating points are `tfmargin.evaluate.tar_at_far`'s exactly (equal scores are never
split; the highest TAR whose FAR is <= the one asked for), computed without holding the
impostor scores: with k the largest count of false accepts that FAR allows, the operating point
must reject the (k + 1)-th highest impostor score and everything tied with it; `thresholds`
holds that score, and a pair is accepted when its cosine is strictly greater than it. So
only the top max_k + 1 impostor scores are kept while the score matrix is streamed in row
blocks. Memory: the genuine scores, the kept impostor scores and one block of
`block_elements` cosines.
"""

import dataclasses

import numpy as np

from tfmargin.evaluate.vectors import unit_rows


@dataclasses.dataclass
class PairwiseResult:
    tar_at_far: dict          # {far: TAR}
    thresholds: dict          # {far: the cosine a pair must exceed}
    far_achieved: dict        # {far: the FAR at that threshold (<= far)}
    false_accepts: dict       # {far: impostor pairs accepted at that threshold}
    genuine_pairs: int
    impostor_pairs: int
    images: int
    identities: int


def _keep_top(kept, scores, k):
    """The k largest of kept and scores (unordered)."""
    if k <= 0:
        return kept[:0]
    both = np.concatenate([kept, scores]) if kept.size else scores
    if both.size <= k:
        return both
    return np.partition(both, both.size - k)[-k:]


def _allowed(far, impostors):
    """The most false accepts k with k / impostors <= far, computed as tar_at_far compares
    (far * impostors can round below an integer that k / impostors does not exceed)."""
    k = int(np.floor(far * impostors))
    while k < impostors and (k + 1) / impostors <= far:
        k += 1
    while k > 0 and k / impostors > far:
        k -= 1
    return k


def pairwise_verification(embeddings, labels, fars=(1e-2, 1e-3, 1e-4), block_elements=1 << 24):
    """TAR at each FAR over every genuine and impostor pair of `embeddings` (N, D) with
    identity `labels` (N,). Embeddings are L2-normalised here; scores are cosines (float64)."""
    e = unit_rows(np.asarray(embeddings, np.float64))
    labels = np.asarray(labels).reshape(-1)
    n = len(e)
    if e.ndim != 2 or labels.shape != (n,):
        raise ValueError(f"pairwise_verification: {e.shape} embeddings but {labels.shape} labels")
    fars = tuple(float(f) for f in fars)
    if any(not 0.0 <= f <= 1.0 for f in fars):
        raise ValueError(f"pairwise_verification: FARs must be in [0, 1], got {fars}")
    _, counts = np.unique(labels, return_counts=True)
    genuine_pairs = int(np.sum(counts * (counts - 1) // 2))
    impostor_pairs = n * (n - 1) // 2 - genuine_pairs
    if genuine_pairs == 0 or impostor_pairs == 0:
        raise ValueError("pairwise_verification: need two images of one identity and two "
                         f"identities; got {n} images of {len(counts)} identities")
    ks = {f: _allowed(f, impostor_pairs) for f in fars}
    keep = min(max(ks.values()) + 1, impostor_pairs)

    genuine = []
    top = np.zeros(0, np.float64)
    rows = max(1, min(n, block_elements // max(n, 1)))
    for start in range(0, n - 1, rows):
        stop = min(start + rows, n - 1)
        block = e[start:stop] @ e[start:].T            # row i against columns start..n-1
        i = np.arange(start, stop)[:, None]
        j = np.arange(start, n)[None, :]
        upper = j > i                                  # each pair once
        same = labels[start:stop, None] == labels[None, start:]
        genuine.append(block[upper & same])
        top = _keep_top(top, block[upper & ~same], keep)
    genuine = np.concatenate(genuine)
    top = np.sort(top)[::-1]                           # the highest impostor scores

    result = PairwiseResult({}, {}, {}, {}, genuine_pairs, impostor_pairs, n, len(counts))
    for far, k in ks.items():
        if k >= impostor_pairs:                        # every pair may be accepted
            threshold = -np.inf
            accepted = impostor_pairs
        else:
            threshold = float(top[k])                  # rejected, with all its ties
            accepted = int(np.sum(top > threshold))
        result.thresholds[far] = threshold
        result.tar_at_far[far] = float(np.mean(genuine > threshold))
        result.false_accepts[far] = accepted
        result.far_achieved[far] = accepted / impostor_pairs
    return result
