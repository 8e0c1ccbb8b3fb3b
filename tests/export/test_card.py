"""The model card's training, teacher and verification fields, read from the training run a
model sits in (files written here by hand, as train() and the teacher CLI lay them out)."""

import json

from tfmargin.export.card import card_from_run, model_card


def _run(tmp_path):
    signal = tmp_path / "signal"
    signal.mkdir()
    manifest = {"format": "tfmargin-teacher-signal-v1",
                "teacher": {"path": "/t/classifier.keras", "sha256": "ab" * 32, "params": 7},
                "dataset": {"path": "/d/train.rec", "sha256": "cd" * 32, "num_images": 70,
                            "num_classes": 14}}
    (signal / "manifest.json").write_text(json.dumps(manifest))
    run = tmp_path / "run"
    run.mkdir()
    config = {"role": "student", "method": "margin_distillation", "head": "arcface",
              "backbone": "mobilefacenet", "steps": 128, "batch_size": 32, "lr": 0.1,
              "seed": 3, "teacher_signal": str(signal), "output_dir": str(run),
              "strategy": "default"}
    (run / "config.json").write_text(json.dumps(config))
    (run / "best.json").write_text(json.dumps({"step": 128, "accuracy": 0.799, "set": "val",
                                               "backbone": "x"}))
    (run / "history.csv").write_text("epoch,accuracy,loss,val_accuracy,val_tar_at_far_0.001\n"
                                     "0,0.1,6.0,0.74,0.02\n1,0.2,5.0,0.80,0.08\n")
    return run, manifest


def test_the_card_tells_the_runs_story(tmp_path):
    run, manifest = _run(tmp_path)
    card = card_from_run(run / "best_backbone.keras")
    assert card["training"]["method"] == "margin_distillation"
    assert card["training"]["seed"] == 3 and card["training"]["epochs_run"] == 2
    assert "strategy" not in card["training"] and card["training"]["run"] == str(run)
    assert card["teacher"]["teacher"] == manifest["teacher"]
    assert card["teacher"]["dataset"]["sha256"] == "cd" * 32
    assert card["verification"]["last_epoch"] == {"val_accuracy": 0.80,
                                                  "val_tar_at_far_0.001": 0.08}
    assert card["verification"]["best"] == {"step": 128, "accuracy": 0.799, "set": "val"}


def test_a_model_outside_a_run_has_no_story(tmp_path):
    assert card_from_run(tmp_path / "model.keras") == {}
    (tmp_path / "config.json").write_text("{not json")
    assert card_from_run(tmp_path / "model.keras") == {}


def test_given_fields_win_and_reach_the_card(tmp_path, monkeypatch):
    import tfmargin.export.card as card_module

    run, _ = _run(tmp_path)
    merged = {**card_from_run(run / "backbone.keras"), "teacher": "given by the caller"}
    monkeypatch.setattr(card_module, "describe", lambda backbone: {"embedding_size": 8})
    card = model_card(object(), None, merged)
    assert card["teacher"] == "given by the caller"
    assert card["training"]["method"] == "margin_distillation"
