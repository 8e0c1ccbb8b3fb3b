"""The fuzz worker of test_fuzz.py: seeded mutations of one file of a small dataset, each read
by the library's readers, one JSON line per case on stdout.

    python -m tests.data.fuzz PRISTINE_DIR TARGET FIRST_SEED COUNT

TARGET is the file mutated: train.rec, train.idx, property, test.bin, shards (a TFRecord shard)
or dataset.json. A case passes when the readers either raise the library's error (a
TfmarginError) naming the damaged file, or return data that keeps every invariant (labels in
range, 112x112x3 images, counts equal to what the metadata says). Anything else is reported
with the seed and the mutation, so a failure can be replayed alone.
"""

import json
import os
import resource
import shutil
import sys
import tempfile

import numpy as np

TEXT_TARGETS = ("train.idx", "property", "dataset.json")


HOSTILE_VALUES = [-1, 0, float("nan"), 1e308, 10 ** 20, None, [], {}, "x", 3.5, True,
                  "../../etc/hostname", "/etc/hostname", [-5, 10 ** 9]]


def _json_edit(data, rng):
    """One value of a JSON document (found by walking it) replaced by a hostile one: the schema
    checks are reached, where a byte edit mostly breaks the syntax."""
    doc = json.loads(data)
    spots = []

    def walk(node, path):
        items = (node.items() if isinstance(node, dict) else enumerate(node)
                 if isinstance(node, list) else ())
        for k, v in items:
            spots.append((node, k, path + [k]))
            walk(v, path + [k])

    walk(doc, [])
    node, key, path = spots[int(rng.integers(0, len(spots)))]
    value = HOSTILE_VALUES[int(rng.integers(0, len(HOSTILE_VALUES)))]
    if rng.random() < 0.2 and isinstance(node, dict):
        del node[key]
        return json.dumps(doc).encode(), f"json: removed {path}"
    node[key] = value
    return json.dumps(doc).encode(), f"json: {path} -> {value!r}"


def mutate(data, rng, text, structured=False):
    """(mutated bytes, description)."""
    if structured and rng.random() < 0.5:
        return _json_edit(data, rng)
    data = bytearray(data)
    kind = rng.choice(["flip", "truncate", "insert", "overwrite"] + (["edit"] * 3 if text else []))
    n = max(len(data), 1)
    if kind == "flip":
        spots = rng.integers(0, n, rng.integers(1, 9))
        for i in spots:
            if i < len(data):
                data[i] ^= 1 << int(rng.integers(0, 8))
        return bytes(data), f"flip at {sorted(spots.tolist())}"
    if kind == "truncate":
        cut = int(rng.integers(0, n))
        return bytes(data[:cut]), f"truncate to {cut}"
    if kind == "insert":
        at, blob = int(rng.integers(0, n)), rng.bytes(int(rng.integers(1, 64)))
        return bytes(data[:at] + blob + data[at:]), f"insert {len(blob)} bytes at {at}"
    if kind == "overwrite":
        at, blob = int(rng.integers(0, n)), rng.bytes(int(rng.integers(4, 32)))
        data[at:at + len(blob)] = blob
        return bytes(data), f"overwrite {len(blob)} bytes at {at}"
    # a textual edit: one number or token replaced by something hostile
    lines = bytes(data).split(b"\n")
    i = int(rng.integers(0, len(lines)))
    hostile = [b"-1", b"0", b"nan", b"1e400", b"99999999999999999999999", b"\xff\xfe",
               b"\"../../etc/hostname\"", b"null", b"[]", b"{}", b"\"x\"", b"3.5", b""]
    token = hostile[int(rng.integers(0, len(hostile)))]
    words = lines[i].replace(b",", b" , ").replace(b":", b" : ").split(b" ")
    j = int(rng.integers(0, max(len(words), 1)))
    if words:
        words[j] = token
    lines[i] = b" ".join(words).replace(b" , ", b",").replace(b" : ", b":")
    return b"\n".join(lines), f"line {i}: token {j} -> {token!r}"


def _stream(source):
    """One epoch of the training stream, at the pipeline's edge, with its invariants."""
    from tfmargin.data import train_dataset
    from tfmargin.data.pipeline import named_errors

    for strict in (False, True):  # the default path skips corrupt images; strict refuses
        with named_errors(source):
            ds = train_dataset(source, 8, strict=strict, seed=0)
            for features, label in ds:
                assert features["image"].shape[1:] == (112, 112, 3)
                assert 0 <= int(np.min(label)) and int(np.max(label)) < ds.num_classes


def _check_rec(directory):
    from tfmargin.data.recordio import RecordIO

    with RecordIO(os.path.join(directory, "train.rec")) as r:
        keys, labels = r.keys(), r.labels()
        assert len(keys) == len(labels) and len(keys) > 0, "no images"
        assert labels.min() >= 0 and (r.num_classes is None or labels.max() < r.num_classes)
        for key in keys:
            r.read(int(key))
        ranges = r.identity_ranges()
        if ranges is not None:
            assert len(ranges) == r.num_classes
    _stream(directory)


def _check_bin(directory):
    from tfmargin.data.verification_bin import load_verification_bin

    images, issame = load_verification_bin(os.path.join(directory, "test.bin"))
    assert images.shape == (2 * len(issame), 112, 112, 3) and images.dtype == np.uint8


def _check_shards(directory):
    from tfmargin.data.tfrecord import check_shards, tfrecord_files

    shards = os.path.join(directory, "shards")
    total = check_shards(shards)
    _, meta = tfrecord_files(shards)
    assert meta is None or meta.get("num_examples") in (None, total)
    _stream(shards)  # and the stream a training run reads


CHECKS = {"train.rec": _check_rec, "train.idx": _check_rec, "property": _check_rec,
          "test.bin": _check_bin, "shards": _check_shards, "dataset.json": _check_shards}


def target_path(directory, target):
    if target == "shards":
        return os.path.join(directory, "shards", sorted(
            f for f in os.listdir(os.path.join(directory, "shards")) if f.endswith(".tfrecord"))[0])
    if target == "dataset.json":
        return os.path.join(directory, "shards", "dataset.json")
    return os.path.join(directory, target)


def names_a_file(message, case):
    """The message names one of the dataset's files (the damaged one, or the one where the
    damage shows: a mutated property is caught as a mismatch with train.rec's header), and says
    what is wrong in its own words, not TensorFlow's wrapped op text."""
    files = [os.path.join(d, f) for d, _, names in os.walk(case) for f in names]
    return (any(f in message for f in files)
            and "the input pipeline failed" not in message
            and "{{function_node" not in message and "[Op:" not in message)


def run_case(pristine, target, seed, work, baseline):
    from tfmargin.errors import TfmarginError

    rng = np.random.default_rng(seed)
    case = os.path.join(work, f"case{seed}")
    shutil.copytree(pristine, case)
    path = target_path(case, target)
    with open(path, "rb") as f:
        data, what = mutate(f.read(), rng, target in TEXT_TARGETS, target == "dataset.json")
    with open(path, "wb") as f:
        f.write(data)
    out = {"target": target, "seed": seed, "mutation": what}
    try:
        CHECKS[target](case)
        out["outcome"] = "data"
    except TfmarginError as e:
        out["outcome"] = "error" if names_a_file(str(e), case) else "unnamed"
        out["message"] = str(e).splitlines()[0][:300]
    except AssertionError as e:
        out["outcome"], out["message"] = "wrong data", str(e)[:300]
    except Exception as e:  # noqa: BLE001 - what the test is looking for
        out["outcome"], out["message"] = "raw", f"{type(e).__name__}: {str(e)[:300]}"
    # against the peak after the pristine check, not after the previous case: a case that stays
    # under an earlier case's peak still counts everything it grew above the start
    out["rss_growth_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline) / 1024
    shutil.rmtree(case, ignore_errors=True)
    return out


def main(argv):
    pristine, target, first, count = argv[1], argv[2], int(argv[3]), int(argv[4])
    work = tempfile.mkdtemp(prefix="tfmargin-fuzz-")
    CHECKS[target](pristine)  # the pristine set passes, and the imports are counted before
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        for seed in range(first, first + count):
            print(json.dumps({"start": seed}), flush=True)  # the last one names a hang
            print(json.dumps(run_case(pristine, target, seed, work, baseline)), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv)
