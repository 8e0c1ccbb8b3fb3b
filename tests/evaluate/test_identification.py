"""identification() against a brute-force float64 search; chunked, streamed and whole agree."""

import numpy as np
import pytest

from tfmargin.evaluate import identification


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _problem(rng, probes=60, ids=40, dim=24, distractors=3000):
    gallery_labels = np.r_[np.arange(ids), rng.integers(0, ids, 20)]  # some ids twice
    gallery = _unit(rng.standard_normal((gallery_labels.size, dim)))
    probe_labels = rng.integers(0, ids, probes)
    # A probe is a noisy copy of one of its mates: a spread of ranks, including far ones.
    mate_of = np.array([rng.choice(np.flatnonzero(gallery_labels == y)) for y in probe_labels])
    noise = rng.uniform(0.5, 3.0, (probes, 1))
    probe = _unit(gallery[mate_of] + noise * rng.standard_normal((probes, dim)) / np.sqrt(dim))
    extra = _unit(rng.standard_normal((distractors, dim)))
    return probe, probe_labels, gallery, gallery_labels, extra.astype(np.float32)


def _brute_ranks(probe, probe_labels, gallery, gallery_labels, distractors):
    """Rank = 1 + candidates (other-id gallery entries, distractors) scoring >= the best mate."""
    ranks = []
    for p, y in zip(probe.astype(np.float64), probe_labels):
        g = gallery.astype(np.float64) @ p
        best_mate = max(g[i] for i in range(g.size) if gallery_labels[i] == y)
        impostors = [g[i] for i in range(g.size) if gallery_labels[i] != y]
        d = distractors.astype(np.float64) @ p
        ranks.append(1 + sum(s >= best_mate for s in impostors) + int(np.sum(d >= best_mate)))
    return np.array(ranks)


def _assert_no_near_ties(probe, probe_labels, gallery, gallery_labels, distractors):
    # float32 vs float64 can only disagree on scores within ~1e-6 of a mate score.
    g = probe @ gallery.T
    same = probe_labels[:, None] == gallery_labels[None, :]
    mates = np.max(np.where(same, g, -np.inf), axis=1)
    candidates = np.r_["1", np.where(same, np.inf, g), probe @ distractors.T]
    assert np.abs(candidates - mates[:, None]).min() > 1e-5


def test_matches_brute_force_every_backend_and_chunking(rng):
    probe, pl, gallery, gl, extra = _problem(rng)
    _assert_no_near_ties(probe, pl, gallery, gl, extra)
    expected = _brute_ranks(probe, pl, gallery, gl, extra)
    assert len(set(expected.tolist())) > 5  # the problem spreads ranks
    ranks = (1, 5, 10, 100)
    want = {k: float(np.mean(expected <= k)) for k in ranks}
    for backend in ("tensorflow", "numpy"):
        whole = identification(probe, pl, gallery, gl, extra, ranks=ranks, backend=backend)
        np.testing.assert_array_equal(whole.probe_ranks, expected)
        assert whole.accuracy == want
        # Chunked array, a generator of uneven chunks, and a float64 list: the same ranks.
        chunked = identification(probe, pl, gallery, gl, extra, ranks=ranks, chunk_size=700,
                                 backend=backend)
        np.testing.assert_array_equal(chunked.probe_ranks, expected)
        pieces = (extra[a:b] for a, b in [(0, 1), (1, 1000), (1000, 1001), (1001, 3000)])
        streamed = identification(probe, pl, gallery, gl, pieces, ranks=ranks, chunk_size=512,
                                  backend=backend)
        np.testing.assert_array_equal(streamed.probe_ranks, expected)
        assert streamed.num_distractors == 3000
        as_list = identification(probe, pl, gallery, gl, [extra[:5].astype(np.float64).tolist(),
                                                          extra[5:]], backend=backend)
        np.testing.assert_array_equal(as_list.probe_ranks, expected)


def test_no_distractors_and_unnormalised_inputs(rng):
    probe, pl, gallery, gl, _ = _problem(rng, distractors=1)
    expected = _brute_ranks(probe, pl, gallery, gl, np.zeros((0, probe.shape[1])))
    got = identification(3.0 * probe, pl, 0.5 * gallery, gl)
    np.testing.assert_array_equal(got.probe_ranks, expected)
    assert got.num_distractors == 0
    np.testing.assert_array_equal(got.num_candidates, [np.sum(gl != y) for y in pl])


def test_ties_count_against_the_probe():
    probe = np.array([[1.0, 0.0]])
    gallery = np.array([[1.0, 0.0], [0.0, 1.0]])
    distractors = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]], np.float32)
    got = identification(probe, [7], gallery, [7, 8], distractors, ranks=(1, 2, 3))
    assert got.probe_ranks.tolist() == [3]  # two distractors equal the mate
    assert got.accuracy == {1: 0.0, 2: 0.0, 3: 1.0}


def test_memory_mapped_chunks(rng, tmp_path):
    probe, pl, gallery, gl, extra = _problem(rng)
    files = []
    for i, (a, b) in enumerate([(0, 1200), (1200, 3000)]):
        files.append(tmp_path / f"d{i}.npy")
        np.save(files[-1], extra[a:b])
    streamed = identification(probe, pl, gallery, gl,
                              (np.load(f, mmap_mode="r") for f in files), chunk_size=1000)
    whole = identification(probe, pl, gallery, gl, extra)
    np.testing.assert_array_equal(streamed.probe_ranks, whole.probe_ranks)


def test_bad_inputs(rng):
    probe, pl, gallery, gl, extra = _problem(rng, distractors=10)
    with pytest.raises(ValueError, match="probe 0 .* has no mate"):
        identification(probe, np.full(pl.shape, 999), gallery, gl)
    with pytest.raises(ValueError, match="distractor dimension 5"):
        identification(probe, pl, gallery, gl, extra[:, :5])
    with pytest.raises(ValueError, match="distractor chunk 1 must be"):
        identification(probe, pl, gallery, gl, [extra, extra[0]])
    with pytest.raises(ValueError, match="probe_labels"):
        identification(probe, pl[:-1], gallery, gl)
    bad = extra.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="distractors contain NaN"):
        identification(probe, pl, gallery, gl, bad)
