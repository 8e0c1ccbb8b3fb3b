"""The identification bench row in quick mode: same data in array and stream form, accuracies
checked against a float64 brute force, memory measured in child processes."""

import numpy as np

from benchmarks import identification as row


def test_stream_and_array_hold_the_same_data():
    blocks = list(row.distractor_blocks(120_000, 8))
    assert [b.shape[0] for b in blocks] == [50_000, 50_000, 20_000]
    np.testing.assert_array_equal(np.concatenate(blocks), row.make_distractors(120_000, 8))


def test_quick_row(monkeypatch):
    size = row.QUICK
    record = row.run(quick=True)
    assert record["name"] == "identification" and record["unit"] == "s"
    assert record["value"] > 0 and record["baseline_value"] > 0

    probe, pl, gallery, gl = row.make_probe_gallery(size["probes"], size["dim"])
    x = row.make_distractors(size["distractors"], size["dim"]).astype(np.float64)
    p, g = probe.astype(np.float64), gallery.astype(np.float64)
    mate = np.sum(p * g, axis=1)  # one mate per probe, same index
    others = p @ g.T
    np.fill_diagonal(others, -np.inf)
    rank = 1 + np.sum(others >= mate[:, None], 1) + np.sum(p @ x.T >= mate[:, None], 1)
    expected = {str(k): float(np.mean(rank <= k)) for k in (1, 5, 10)}
    assert record["details"]["accuracy"] == expected
    assert 0 < expected["1"] < expected["10"] < 1  # the quick problem is not trivial

    memory = record["details"]["peak_memory"]
    for method in ("numpy", "tfmargin", "stream"):
        assert memory[method]["accuracy"] == expected, method
        assert memory[method]["peak"] >= memory[method]["before"] > 0
    assert record["met"] == (record["details"]["time_met"] and record["details"]["memory_met"])
