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


def test_replace_directory_swaps_in_one_step_and_leaves_nothing(tmp_path, monkeypatch):
    """Where the kernel can exchange two names, the old directory never leaves `path`'s name:
    a rename that would move it aside is never made (os.replace fails if called here)."""
    from tfmargin import atomic

    path, new = tmp_path / "out", tmp_path / "out.tmp-1"
    path.mkdir()
    (path / "old.txt").write_text("old")
    new.mkdir()
    (new / "new.txt").write_text("new")
    (tmp_path / "probe-a").mkdir()
    (tmp_path / "probe-b").mkdir()
    if not atomic._exchange(str(tmp_path / "probe-a"), str(tmp_path / "probe-b")):
        pytest.skip("this file system cannot exchange two names (the fallback is tested below)")
    (tmp_path / "probe-a").rmdir()
    (tmp_path / "probe-b").rmdir()

    def no_replace(*args):
        raise AssertionError(f"moved aside: {args}")

    monkeypatch.setattr(atomic.os, "replace", no_replace)
    atomic.replace_directory(str(new), str(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert [p.name for p in path.iterdir()] == ["new.txt"]


def test_replace_directory_without_exchange_restores_the_old_on_failure(tmp_path,
                                                                         monkeypatch):
    from tfmargin import atomic

    path, new = tmp_path / "out", tmp_path / "out.tmp-1"
    path.mkdir()
    (path / "old.txt").write_text("old")
    new.mkdir()
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    real = os.replace
    calls = []

    def second_fails(a, b):
        calls.append((a, b))
        if len(calls) == 2:
            raise OSError("disk gone")
        real(a, b)

    monkeypatch.setattr(atomic.os, "replace", second_fails)
    with pytest.raises(OSError, match="disk gone"):
        atomic.replace_directory(str(new), str(path))
    assert [p.name for p in path.iterdir()] == ["old.txt"]
    monkeypatch.setattr(atomic.os, "replace", real)
    atomic.replace_directory(str(new), str(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and not any(path.iterdir())


def test_recover_directory_undoes_a_kill_between_the_fallbacks_renames(tmp_path):
    from tfmargin.atomic import recover_directory

    path = tmp_path / "backup"
    old = tmp_path / "backup.old-4242"  # moved aside, then the process died
    old.mkdir()
    (old / "training_metadata.json").write_text('{"epoch": 3}')
    assert recover_directory(path)
    assert (path / "training_metadata.json").read_text() == '{"epoch": 3}'
    assert not old.exists()
    (tmp_path / "backup.old-7").mkdir()  # a stale copy beside a present directory
    assert not recover_directory(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup"]
    assert not recover_directory(tmp_path / "missing" / "backup")
