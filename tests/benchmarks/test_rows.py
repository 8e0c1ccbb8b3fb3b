"""Every benchmark row runs in quick mode and returns a well-formed record."""

import json

import pytest

from benchmarks import row_modules
from benchmarks.common import markdown_table, write_result


def test_train_step_row_quick(tmp_path):
    record = row_modules()["train_step"].run(quick=True)
    assert record["name"] == "train_step" and record["unit"] == "images/s"
    assert record["value"] > 0 and record["baseline_value"] > 0
    assert record["ratio"] == pytest.approx(record["value"] / record["baseline_value"])
    path = write_result(record, tmp_path)
    assert json.loads(open(path).read())["details"]["num_classes"] == 500
    table = markdown_table([record])
    assert "train_step" in table.splitlines()[2]


def test_goal_direction():
    from benchmarks.common import result
    fast = result("x", subject="a", baseline="b", value=2.0, baseline_value=10.0, unit="s",
                  higher_is_better=False, goal=0.42)
    assert fast["ratio"] == pytest.approx(0.2) and fast["met"] is True
    slow = result("x", subject="a", baseline="b", value=1.0, baseline_value=2.0, unit="img/s",
                  higher_is_better=True, goal=0.8)
    assert slow["met"] is False


def test_data_pipeline_row_quick():
    record = row_modules()["data_pipeline"].run(quick=True)
    assert record["name"] == "data_pipeline" and record["value"] > 0 and record["baseline_value"] > 0
    assert record["ratio"] == pytest.approx(record["value"] / record["baseline_value"])


def test_every_row_is_discovered():
    assert {"train_step", "data_pipeline", "synthetic_generation", "identification", "export",
            "partial_fc"} <= set(row_modules())


def test_export_row_quick():
    record = row_modules()["export"].run(quick=True)
    assert record["name"] == "export" and record["value"] > 0 and record["baseline_value"] > 0
    assert record["ratio"] == pytest.approx(record["value"] / record["baseline_value"])
    assert record["met"] == (record["ratio"] <= 0.45)


def test_partial_fc_row_quick():
    """Both settings run in their own process; the sampled step computes the sampled share of
    the classes, and the MarginDistillation head's target logits do not move."""
    record = row_modules()["partial_fc"].run(quick=True)
    d = record["details"]
    assert record["name"] == "partial_fc" and record["baseline_value"] == 1.0
    assert record["value"] == pytest.approx(d["full"]["seconds"] / d["sampled"]["seconds"])
    assert d["seconds_per_process"] == {"full": [d["full"]["seconds"]],
                                        "sampled": [d["sampled"]["seconds"]]}
    assert d["sampled"]["sampled_classes"] == 2_000
    assert d["md_target_logit_max_abs_difference"] < 1e-4
    assert d["full"]["peak_rss_bytes"] > d["centers_bytes"]
    # the sampled softmax has the same target logits and a subset of the negatives
    assert 0 < d["sampled"]["loss"] < d["full"]["loss"]
    # the sampled step's centers gradient is its rows only, the full step's a dense matrix
    assert d["sampled"]["gradient_rows"] == 2_000 and d["full"]["gradient_rows"] is None


def test_teacher_signal_row_quick():
    """1 and 2 worker processes each end with a manifest over the same shard layout."""
    record = row_modules()["teacher_signal"].run(quick=True)
    d = record["details"]
    assert record["name"] == "teacher_signal" and d["images"] == 24 and d["same_shard_layout"]
    assert record["value"] > 0 and record["baseline_value"] > 0
    assert record["ratio"] == pytest.approx(record["value"] / record["baseline_value"])
