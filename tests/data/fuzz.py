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


def mutate(data, rng, text):
    """(mutated bytes, description)."""
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

    with named_errors(source):
        ds = train_dataset(source, 8, strict=True, seed=0)
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


def run_case(pristine, target, seed, work):
    from tfmargin.errors import TfmarginError

    rng = np.random.default_rng(seed)
    case = os.path.join(work, f"case{seed}")
    shutil.copytree(pristine, case)
    path = target_path(case, target)
    with open(path, "rb") as f:
        data, what = mutate(f.read(), rng, target in TEXT_TARGETS)
    with open(path, "wb") as f:
        f.write(data)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = {"target": target, "seed": seed, "mutation": what}
    try:
        CHECKS[target](case)
        out["outcome"] = "data"
    except TfmarginError as e:
        named = os.path.dirname(path) in str(e) or path in str(e)
        out["outcome"] = "error" if named else "unnamed"
        out["message"] = str(e).splitlines()[0][:300]
    except AssertionError as e:
        out["outcome"], out["message"] = "wrong data", str(e)[:300]
    except Exception as e:  # noqa: BLE001 - what the test is looking for
        out["outcome"], out["message"] = "raw", f"{type(e).__name__}: {str(e)[:300]}"
    out["rss_growth_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    shutil.rmtree(case, ignore_errors=True)
    return out


def main(argv):
    pristine, target, first, count = argv[1], argv[2], int(argv[3]), int(argv[4])
    work = tempfile.mkdtemp(prefix="tfmargin-fuzz-")
    CHECKS[target](pristine)  # the pristine set passes, and the imports are counted before
    try:
        for seed in range(first, first + count):
            print(json.dumps({"start": seed}), flush=True)  # the last one names a hang
            print(json.dumps(run_case(pristine, target, seed, work)), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv)
