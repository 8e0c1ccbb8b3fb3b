"""All-or-nothing writes: a failure leaves the previous file intact and no temporary behind."""

import json
import os

import pytest

from tfmargin.atomic import AllOrNothing, atomic_path, write_json


def test_write_json_replaces_and_failure_keeps_old(tmp_path):
    path = tmp_path / "sub" / "r.json"
    write_json(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("killed mid-write")
    assert json.loads(path.read_text()) == {"a": 1}
    assert os.listdir(path.parent) == ["r.json"]


def test_suffix_is_kept_for_picky_writers(tmp_path):
    with atomic_path(tmp_path / "m.keras", suffix=".keras") as tmp:
        assert tmp.endswith(".keras") and tmp != str(tmp_path / "m.keras")
        open(tmp, "w").close()
    assert os.listdir(tmp_path) == ["m.keras"]


def test_all_or_nothing_protocol():
    calls = []

    class Writer(AllOrNothing):
        def close(self):
            calls.append("close")

        def abort(self):
            calls.append("abort")

    with Writer():
        pass
    with pytest.raises(ValueError):
        with Writer():
            raise ValueError
    assert calls == ["close", "abort"]
