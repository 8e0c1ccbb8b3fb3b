"""1:N identification, MegaFace-style: each probe is searched among the gallery plus distractors.

The rank of a probe is 1 + the number of candidates that score at least as high (cosine
similarity) as its best mate, the candidates being the gallery entries of other identities and
every distractor. Ties count against the probe. Rank-k accuracy is the fraction of probes with
rank <= k.

Because the mate scores are known before the distractors are read, the search does not need a
top-k list: it counts, per probe, the distractors that reach the mate score. That count is exact
(so is every rank, not only the first k) and costs one comparison per score. The work is a
three-stage pipeline over bounded tiles: a prefetch thread slices the next chunk of distractors
(an array is sliced into views; any iterable of chunks, e.g. arrays memory-mapped from disk,
is read piece by piece) into a normalised float32 copy; the main thread multiplies it with the
probes (TensorFlow's multithreaded sgemm); a worker thread counts the previous score tile.
Besides the caller's data, at most a few chunks and two score tiles exist at once.
"""

import concurrent.futures
import dataclasses

import numpy as np

from tfmargin.evaluate.vectors import unit_rows

# One (probes x distractors) float32 score tile. Measured at 1,000 x 300k x 512: 16 MiB tiles
# were as fast as 64 MiB ones and left ~120 MiB of peak memory above the data instead of ~470.
DEFAULT_TILE_BYTES = 16 << 20
PROBE_BLOCK = 1024
MAX_CHUNK = 65_536


@dataclasses.dataclass
class IdentificationResult:
    """accuracy: {k: rank-k accuracy}; probe_ranks: (P,) rank of each probe (1 = first);
    mate_scores: (P,) cosine similarity of each probe to its best mate;
    num_candidates: gallery impostors + distractors each probe was searched among (per probe)."""

    accuracy: dict
    probe_ranks: np.ndarray
    mate_scores: np.ndarray
    num_distractors: int
    num_candidates: np.ndarray

    def to_dict(self):
        return {
            "accuracy": {str(k): v for k, v in self.accuracy.items()},
            "num_probes": int(self.probe_ranks.size),
            "num_distractors": self.num_distractors,
            "mean_rank": float(np.mean(self.probe_ranks)) if self.probe_ranks.size else None,
        }


def _normalize(x, where):
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"identification: {where} must be a (N, D) array, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"identification: {where} contains NaN or infinity")
    return unit_rows(x)


def _chunks(distractors, chunk_size):
    """Yield 2-D pieces of at most chunk_size rows (views of arrays, not copies)."""
    if distractors is None:
        return
    if isinstance(distractors, np.ndarray):
        distractors = [distractors]
    for i, chunk in enumerate(distractors):
        if not hasattr(chunk, "shape"):
            chunk = np.asarray(chunk)
        if len(chunk.shape) != 2:
            raise ValueError(f"identification: distractor chunk {i} must be (m, D), got "
                             f"{tuple(chunk.shape)}")
        # Large chunks are split too, so that the score tile stays bounded.
        for start in range(0, chunk.shape[0], chunk_size):
            yield chunk[start:start + chunk_size]


def _prepared(pieces, dim):
    """Each piece as a new contiguous float32 array of unit rows. This runs in the prefetch
    thread, so a memory-mapped file is read from disk while the previous piece is scored."""
    for piece in pieces:
        if piece.shape[1] != dim:
            raise ValueError(f"identification: distractor dimension {piece.shape[1]} != probe "
                             f"dimension {dim}")
        x = np.array(piece, dtype=np.float32)
        norms = np.sqrt(np.einsum("ij,ij->i", x, x))
        if not np.all(np.isfinite(norms)):
            raise ValueError("identification: distractors contain NaN or infinity")
        x /= np.maximum(norms, 1e-12)[:, None]
        yield x


def _prefetched(iterator):
    """Iterate while the next item is produced in a background thread."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(next, iterator, None)
        while True:
            item = future.result()
            if item is None:
                return
            future = pool.submit(next, iterator, None)
            yield item


class _Counter:
    """Counts, per probe, the distractor scores >= its threshold (its best mate's score).

    Score tiles (probe block x chunk) come from `_scores`; counting them (one compare and one
    count per score, numpy, GIL released) runs in a worker thread while the next tile's
    matmul runs, at most one tile behind, so at most two tiles exist at once.
    """

    def __init__(self, probes, thresholds, probe_block):
        self.blocks = [(start, min(start + probe_block, probes.shape[0]))
                       for start in range(0, probes.shape[0], probe_block)]
        self.probes = [self._constant(probes[a:b]) for a, b in self.blocks]
        self.thresholds = [thresholds[a:b, None] for a, b in self.blocks]
        self.counts = np.zeros(probes.shape[0], np.int64)
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        self.pending = None

    def _constant(self, x):
        return x

    def _scores(self, probes, chunk):
        return probes @ chunk.T

    def _count(self, b, scores):
        a, z = self.blocks[b]
        self.counts[a:z] += np.count_nonzero(np.asarray(scores) >= self.thresholds[b], axis=1)

    def _wait(self):
        if self.pending is not None:
            self.pending.result()  # re-raises a worker error here
            self.pending = None

    def add(self, chunk):
        chunk = self._constant(chunk)
        for b, probes in enumerate(self.probes):
            scores = self._scores(probes, chunk)
            self._wait()
            self.pending = self.pool.submit(self._count, b, scores)

    def result(self):
        try:
            self._wait()
        finally:
            self.pool.shutdown()
        return self.counts


class _TensorFlowCounter(_Counter):
    """The matmul by TensorFlow (oneDNN sgemm, all cores): ~1.2x faster than numpy's matmul
    on the 2-core AVX-512 machine it was measured on. (An XLA-fused matmul + count was slower:
    XLA's CPU reduction ran on one thread and took a third of the time.)"""

    def __init__(self, probes, thresholds, probe_block):
        import tensorflow as tf

        self.tf = tf
        super().__init__(probes, thresholds, probe_block)

    def _constant(self, x):
        return self.tf.convert_to_tensor(x)

    def _scores(self, probes, chunk):
        return self.tf.matmul(probes, chunk, transpose_b=True)  # to numpy in the worker


def default_chunk_size(num_probes, num_distractors=None, tile_bytes=DEFAULT_TILE_BYTES):
    """Distractor rows per tile: `tile_bytes` of float32 scores for min(P, 1024) probes, within
    [1,024, 65,536] rows, and no more than the distractors when their number is known."""
    block = max(1, min(num_probes, PROBE_BLOCK))
    rows = min(MAX_CHUNK, max(1024, tile_bytes // (4 * block)))
    if num_distractors:
        rows = min(rows, num_distractors)
    return int(rows)


def _score_gallery(probe, probe_labels, gallery, gallery_labels, tile_bytes):
    """(best mate score, other-identity gallery rows scoring >= it, other-identity rows) per
    probe; the gallery is scored whole, in blocks of probes."""
    n = probe.shape[0]
    mates = np.empty(n, np.float32)
    above = np.empty(n, np.int64)
    impostors = np.empty(n, np.int64)
    block = max(1, tile_bytes // max(4 * gallery.shape[0], 1))
    for start in range(0, n, block):
        stop = min(start + block, n)
        s = probe[start:stop] @ gallery.T
        same = probe_labels[start:stop, None] == gallery_labels[None, :]
        mates[start:stop] = np.max(np.where(same, s, -np.inf), axis=1, initial=-np.inf)
        missing = np.flatnonzero(~same.any(axis=1))
        if missing.size:
            i = start + int(missing[0])
            raise ValueError(f"identification: probe {i} (label {probe_labels[i]!r}) has no mate "
                             "in the gallery")
        above[start:stop] = np.count_nonzero(~same & (s >= mates[start:stop, None]), axis=1)
        impostors[start:stop] = gallery.shape[0] - np.count_nonzero(same, axis=1)
    return mates, above, impostors


def identification(probe, probe_labels, gallery, gallery_labels, distractors=None,
                   ranks=(1, 5, 10), chunk_size=None, tile_bytes=DEFAULT_TILE_BYTES,
                   backend="tensorflow"):
    """Rank-k identification accuracy of each probe among the gallery plus all distractors.

    Args:
      probe, gallery: (P, D) and (G, D) embeddings (L2-normalised here).
      probe_labels, gallery_labels: identity of each row; every probe needs at least one
        gallery entry (a mate) with its label.
      distractors: None, an (M, D) array, or an iterable of (m, D) arrays (for example
        np.load(..., mmap_mode='r') per file); streamed, never copied whole. Each chunk is
        L2-normalised as it is scored.
      ranks: the k of the rank-k accuracies reported.
      chunk_size: distractor rows scored at once; default `default_chunk_size(...)`: as many
        as fit `tile_bytes` of float32 scores for up to 1,024 probes (4,194 rows for 1,000
        probes at 16 MiB).
      backend: 'tensorflow' (its sgemm, multithreaded) or 'numpy' (same pipeline, numpy
        matmul).

    Returns:
      IdentificationResult.
    """
    probe = _normalize(probe, "probe")
    gallery = _normalize(gallery, "gallery")
    probe_labels = np.asarray(probe_labels).reshape(-1)
    gallery_labels = np.asarray(gallery_labels).reshape(-1)
    if probe_labels.size != probe.shape[0]:
        raise ValueError(f"identification: {probe.shape[0]} probes but {probe_labels.size} "
                         "probe_labels")
    if gallery_labels.size != gallery.shape[0]:
        raise ValueError(f"identification: {gallery.shape[0]} gallery rows but "
                         f"{gallery_labels.size} gallery_labels")
    if probe.shape[1] != gallery.shape[1]:
        raise ValueError(f"identification: probe dimension {probe.shape[1]} != gallery "
                         f"dimension {gallery.shape[1]}")
    ranks = tuple(int(k) for k in ranks)
    if not ranks or min(ranks) < 1:
        raise ValueError(f"identification: ranks must be positive integers, got {ranks}")
    if backend not in ("tensorflow", "numpy"):
        raise ValueError(f"identification: backend must be 'tensorflow' or 'numpy', got "
                         f"{backend!r}")

    mates, impostors_above, num_impostors = _score_gallery(probe, probe_labels, gallery,
                                                           gallery_labels, tile_bytes)
    probe_block = max(1, min(probe.shape[0], PROBE_BLOCK))
    if chunk_size is None:
        known = distractors.shape[0] if isinstance(distractors, np.ndarray) else None
        chunk_size = default_chunk_size(probe.shape[0], known, tile_bytes)
    chunk_size = int(chunk_size)
    if chunk_size < 1:
        raise ValueError(f"identification: chunk_size must be positive, got {chunk_size}")
    counter = (_TensorFlowCounter if backend == "tensorflow" and distractors is not None
               else _Counter)(probe, mates, probe_block)
    num_distractors = 0
    try:
        for chunk in _prefetched(_prepared(_chunks(distractors, chunk_size), probe.shape[1])):
            if chunk.shape[0]:
                counter.add(chunk)
                num_distractors += chunk.shape[0]
    finally:
        distractors_above = counter.result()

    probe_ranks = 1 + impostors_above + distractors_above
    accuracy = {k: float(np.mean(probe_ranks <= k)) if probe_ranks.size else float("nan")
                for k in ranks}
    return IdentificationResult(accuracy=accuracy, probe_ranks=probe_ranks, mate_scores=mates,
                                num_distractors=num_distractors,
                                num_candidates=num_impostors + num_distractors)
