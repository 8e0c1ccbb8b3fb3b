"""One model's held-out numbers against an independent numpy restatement: float64 embeddings,
every pair's cosine, tar_at_far on the full list, rank-1 by argmax, 10-fold accuracy."""

import numpy as np
import pytest

from tfmargin.compare import evaluate_held_out, load_held_out
from tfmargin.evaluate import tar_at_far, verification

W = np.random.default_rng(5).normal(size=(14 * 14 * 3, 24))


def model(x):  # a fixed random projection of subsampled pixels: float32 in, float32 out
    x = np.asarray(x)
    return (x[:, ::8, ::8, :].reshape(len(x), -1) @ W).astype(np.float32)


def reference_embeddings(images):
    x = (images.astype(np.float64) - 127.5) / 127.5
    e = x[:, ::8, ::8, :].reshape(len(x), -1) @ W + x[:, :, ::-1][:, ::8, ::8, :].reshape(
        len(x), -1) @ W
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def test_numbers_match_reference(synthetic):
    held = load_held_out(synthetic / "test.bin", synthetic / "identification.npz")
    got = evaluate_held_out(model, held)

    e = reference_embeddings(held.images)
    i, j = np.triu_indices(len(e), k=1)
    scores, genuine = np.sum(e[i] * e[j], axis=1), held.labels[i] == held.labels[j]
    tar = tar_at_far(scores, genuine, (1e-3, 1e-4))
    one_pair = 1 / genuine.sum()  # float32 vs float64: at most one pair may change sides
    assert got["tar@1e-3"] == pytest.approx(tar[1e-3], abs=one_pair + 1e-12)
    assert got["tar@1e-4"] == pytest.approx(tar[1e-4], abs=one_pair + 1e-12)
    assert (got["genuine_pairs"], got["impostor_pairs"]) == (genuine.sum(), (~genuine).sum())

    p, g, d = (held.parts[k] for k in ("probe", "gallery", "distractors"))
    candidates = np.concatenate([e[g], e[d]])
    cand_labels = np.concatenate([held.labels[g], held.labels[d]])
    best = np.argmax(e[p] @ candidates.T, axis=1)
    assert got["rank1"] == pytest.approx(np.mean(cand_labels[best] == held.labels[p]), abs=1e-12)

    images, issame = held.test
    t = reference_embeddings(images)
    assert got["accuracy"] == pytest.approx(verification(t[0::2], t[1::2], issame).accuracy,
                                            abs=1e-9)


def test_held_out_sets_are_described(synthetic):
    held = load_held_out(synthetic / "test.bin", synthetic / "identification.npz")
    d = held.describe()
    with np.load(synthetic / "identification.npz") as z:
        n = len(z["probe"]) + len(z["gallery"]) + len(z["distractors"])
        ids = np.unique(np.concatenate([z["probe_labels"], z["distractor_labels"]])).size
    assert (d["pairwise_images"], d["pairwise_identities"]) == (n, ids)
    assert d["test_pairs"] == len(held.test[1])


def test_distractors_must_be_other_people(synthetic, tmp_path):
    with np.load(synthetic / "identification.npz") as z:
        arrays = dict(z)
    arrays["distractor_labels"] = np.full(len(arrays["distractors"]), arrays["probe_labels"][0])
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match="bad.npz: distractor_labels share identities"):
        load_held_out(synthetic / "test.bin", tmp_path / "bad.npz")
