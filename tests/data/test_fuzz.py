"""Hostile files: seeded mutations (bit flips, truncations, inserted and overwritten bytes,
hostile tokens in the text files) of every file of a small dataset, read by the library's
readers in a subprocess with a time limit. Every case must end in the library's error naming
the damaged file, or in data that keeps every invariant; none may hang or grow the process by
more than a few hundred MB. The worker is tests/data/fuzz.py; a failing case prints its target
and seed, and `python -m tests.data.fuzz PRISTINE TARGET SEED 1` replays it alone."""

import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGETS = ("train.rec", "train.idx", "property", "test.bin", "shards", "dataset.json")
CASES = 50          # per target: 300 in all, about a minute on 2 cores
RSS_LIMIT_MB = 300  # growth of the worker's peak memory during one case


@pytest.fixture(scope="module")
def pristine(synthetic, tmp_path_factory):
    from tfmargin.data.convert import convert_to_tfrecord

    root = tmp_path_factory.mktemp("fuzz") / "pristine"
    root.mkdir()
    for name in ("train.rec", "train.idx", "property", "test.bin"):
        shutil.copy(synthetic / name, root / name)
    convert_to_tfrecord(str(synthetic / "train.rec"), str(root / "shards"), num_shards=2,
                        seed=0, progress=False)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_mutated_files_end_in_a_named_error_or_sound_data(pristine, target):
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    first = 1000 * TARGETS.index(target)  # other seeds for every target
    try:
        proc = subprocess.run([sys.executable, "-m", "tests.data.fuzz", str(pristine), target,
                               str(first), str(CASES)], capture_output=True, text=True,
                              env=env, timeout=300, cwd=ROOT)
        out = proc.stdout
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        started = [json.loads(line)["start"] for line in out.splitlines() if '"start"' in line]
        pytest.fail(f"{target}: hung at seed {started[-1] if started else first}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    cases = [json.loads(line) for line in out.splitlines() if '"outcome"' in line]
    assert len(cases) == CASES
    bad = [c for c in cases if c["outcome"] not in ("error", "data")]
    assert not bad, json.dumps(bad, indent=1)
    heavy = [c for c in cases if c["rss_growth_mb"] > RSS_LIMIT_MB]
    assert not heavy, json.dumps(heavy, indent=1)
    # the mutations do break things: most cases must have been refused
    assert sum(c["outcome"] == "error" for c in cases) >= CASES // 4


def test_found_by_the_fuzzer_strict_decode_error_is_named(synthetic, tmp_path):
    """Seed 0 of train.rec once ended in TensorFlow's InvalidArgumentError (a page of graph
    context) from strict decoding; at the pipeline's edge it is one line naming the record."""
    from tfmargin.data import train_dataset
    from tfmargin.data.pipeline import DataPipelineError, named_errors
    from tfmargin.data.recordio.format import read_idx

    for name in ("train.rec", "train.idx", "property"):
        shutil.copy(synthetic / name, tmp_path / name)
    keys, offsets = read_idx(tmp_path / "train.idx")
    at = int(offsets[list(keys).index(5)]) + 8 + 24  # record 5's image: past chunk + IRHeader
    with open(tmp_path / "train.rec", "r+b") as f:
        f.seek(at)
        f.write(b"\x00" * 16)  # no JPEG / PNG signature left
    # the .rec itself is named, not only its directory (the fuzzer's stricter check found that)
    with pytest.raises(DataPipelineError,
                       match=rf"^{tmp_path / 'train.rec'}: record 5: corrupt image"):
        with named_errors(str(tmp_path)):
            for _ in train_dataset(str(tmp_path), 10, strict=True, seed=0):  # all 70
                pass


def test_found_by_the_fuzzer_shard_errors_lose_tensorflows_wrapping(synthetic, tmp_path):
    """Seed 3000 of shards: the line named the shard but carried TensorFlow's
    `{{function_node __wrapped__IteratorGetNext...}}` prefix and `[Op:...] name:` suffix."""
    from tfmargin.data.convert import convert_to_tfrecord
    from tfmargin.data.tfrecord import TFRecordError, check_shards

    shards = tmp_path / "shards"
    convert_to_tfrecord(str(synthetic / "train.rec"), str(shards), num_shards=1, seed=0,
                        progress=False)
    shard = shards / "train-00000-of-00001.tfrecord"
    data = bytearray(shard.read_bytes())
    data[5000:5011] = b"\xab" * 11
    shard.write_bytes(bytes(data))
    with pytest.raises(TFRecordError) as info:
        check_shards(str(shards))
    message = str(info.value)
    assert message.startswith(f"{shard}: record ") and "corrupted record at" in message
    assert "{{" not in message and "[Op:" not in message and "\n" not in message


def test_op_message_strips_the_graph_wrapping():
    from tfmargin.errors import op_message

    class OpError(Exception):
        message = ("{{function_node __wrapped__IteratorGetNext_output_types_1_device_/job:local"
                   "host/replica:0/task:0/device:CPU:0}} corrupted record at 45117 "
                   "[Op:IteratorGetNext] name: \nmore")

    assert op_message(OpError()) == "corrupted record at 45117"
    assert op_message(ValueError("plain")) == "plain"
    assert op_message(ValueError()) == "ValueError"
