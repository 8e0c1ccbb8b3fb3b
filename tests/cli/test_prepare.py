"""`python -m tfmargin.cli.prepare`: every task end to end in a subprocess (absl flags are
process-global), outputs checked with the library readers and independent parsers."""

import json
import os
import pickle
import subprocess
import sys

import numpy as np

from tfmargin.data.images import encode_jpeg, encode_png

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def prepare(*args, ok=True):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-m", "tfmargin.cli.prepare", *args, "--noprogress"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=240)
    if ok:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def summary_of(proc, task):
    line = [l for l in proc.stdout.splitlines() if l.startswith(f"prepare {task}:")][-1]
    return dict(kv.split("=", 1) for kv in line.split(": ", 1)[1].split(", "))


def make_folders(root, rng, per=3, ids=("ann", "ben", "cat")):
    for name in ids:
        os.makedirs(os.path.join(root, name))
        for j in range(per):
            img = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)
            with open(os.path.join(root, name, f"{j}.jpg"), "wb") as f:
                f.write(encode_jpeg(img))


def test_folders2rec_then_rec2tfrecord_with_teacher(tmp_path, rng):
    from tfmargin.data.recordio import RecordIO
    from tfmargin.data.tfrecord import tfrecord_dataset
    folders = str(tmp_path / "faces")
    make_folders(folders, rng)
    with open(os.path.join(folders, "ben", "bad.jpg"), "wb") as f:
        f.write(b"\xff\xd8\xffnope")
    rec = str(tmp_path / "rec" / "train.rec")
    proc = prepare("folders2rec", f"--input={folders}", f"--output={rec}")
    s = summary_of(proc, "folders2rec")
    assert (s["written"], s["skipped_corrupt"], s["num_classes"]) == ("9", "1", "3")
    skipped = [l for l in proc.stderr.splitlines() if "skipped" in l]  # named, not just counted
    assert len(skipped) == 1 and "bad.jpg" in skipped[0] and "corrupt image" in skipped[0]
    with RecordIO(rec) as r:
        assert len(r) == 9 and r.labels().tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
        first = r.read(r.keys()[4]).image
    assert first == open(os.path.join(folders, "ben", "1.jpg"), "rb").read()  # stored as is

    teacher = rng.normal(size=(9, 4)).astype(np.float32)
    np.save(tmp_path / "t.npy", teacher)
    np.save(tmp_path / "tf.npy", -teacher)
    out = str(tmp_path / "shards")
    s = summary_of(prepare("rec2tfrecord", f"--input={rec}", f"--output={out}", "--num_shards=2",
                           f"--teacher={tmp_path / 't.npy'}",
                           f"--teacher_flip={tmp_path / 'tf.npy'}"), "rec2tfrecord")
    assert (s["written"], s["shards"]) == ("9", "2")
    meta = json.load(open(os.path.join(out, "dataset.json")))
    assert meta["teacher_dim"] == 4 and meta["counts"] == [5, 4]
    for ex in tfrecord_dataset(out):
        key = int(ex["key"].numpy())
        np.testing.assert_array_equal(ex["teacher"].numpy(), teacher[key - 1])
        np.testing.assert_array_equal(ex["teacher_flip"].numpy(), -teacher[key - 1])


def test_pairs2bin_lfw_format(tmp_path, rng):
    images = tmp_path / "lfw"
    pics = {}
    for name, n, size in [("Ann_A", 2, 112), ("Bob_B", 1, 250)]:
        os.makedirs(images / name)
        for k in range(1, n + 1):
            img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            pics[(name, k)] = img
            (images / name / f"{name}_{k:04d}.png").write_bytes(encode_png(img))
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("1\t1\nAnn_A\t1\t2\nAnn_A\t2\tBob_B\t1\n")  # 1 set of 1 + 1 pairs
    out = tmp_path / "lfw.bin"
    proc = prepare("pairs2bin", f"--pairs={pairs}", f"--images={images}", f"--output={out}",
                   ok=False)  # Bob's photo is 250x250: not an aligned crop, and no --align
    bob = images / "Bob_B" / "Bob_B_0001.png"
    assert proc.returncode == 1 and not out.exists()
    assert proc.stderr.strip().splitlines()[-1] == (
        f"prepare pairs2bin: error: {bob}: 250x250 pixels, not a 112x112 aligned face crop; "
        "add --align (align=True) to detect and align the faces, or align the photos first "
        "with `prepare align`")
    pics[("Bob_B", 1)] = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)
    bob.write_bytes(encode_png(pics[("Bob_B", 1)]))
    s = summary_of(prepare("pairs2bin", f"--pairs={pairs}", f"--images={images}",
                           f"--output={out}"), "pairs2bin")
    assert (s["pairs"], s["kept"], s["images"]) == ("2", "3", "3")
    with open(out, "rb") as f:
        bins, issame = pickle.load(f, encoding="bytes")
    assert issame == [True, False] and len(bins) == 4
    assert bins[0] == encode_png(pics[("Ann_A", 1)])  # 112x112 kept byte for byte
    from tfmargin.data.verification_bin import load_verification_bin
    imgs, _ = load_verification_bin(str(out))
    assert imgs.shape == (4, 112, 112, 3)


def test_align_to_rec(tmp_path):
    from skimage import data
    from tfmargin.data.recordio import RecordIO
    photos = tmp_path / "photos"
    os.makedirs(photos / "eileen")
    os.makedirs(photos / "nobody")
    (photos / "eileen" / "astronaut.png").write_bytes(encode_png(data.astronaut()))
    (photos / "nobody" / "gray.png").write_bytes(encode_png(np.full((200, 200, 3), 128, np.uint8)))
    (photos / "nobody" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    out = tmp_path / "aligned" / "train.rec"
    proc = prepare("align", f"--input={photos}", f"--output={out}")
    s = summary_of(proc, "align")
    assert (s["written"], s["no_face"], s["skipped_corrupt"], s["images"]) == ("1", "1", "1", "3")
    skipped = sorted(l for l in proc.stderr.splitlines() if l.startswith("prepare align: skip"))
    assert len(skipped) == 2
    assert "broken.jpg" in skipped[0] and f"{photos / 'nobody' / 'gray.png'}: no face found" in skipped[1]
    with RecordIO(str(out)) as r:
        assert len(r) == 1 and r.num_classes == 2 and r.read(1).label == 0


def test_errors_are_one_line(tmp_path):
    proc = prepare("folders2rec", f"--input={tmp_path / 'missing'}", "--output=x.rec", ok=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f"prepare folders2rec: error: --input={tmp_path / 'missing'}: does not exist")
    proc = prepare("rec2tfrecord", ok=False)
    assert proc.returncode != 0 and "--input is required for task 'rec2tfrecord'" in proc.stderr
    proc = prepare("nonsense", ok=False)
    assert proc.returncode != 0 and "unknown task 'nonsense'" in proc.stderr
    bad = tmp_path / "evil.bin"
    bad.write_bytes(pickle.dumps(([os.system, b"x"], [True])))
    proc = prepare("pairs2bin", f"--pairs={bad}", f"--images={tmp_path}",
                   f"--output={tmp_path / 'o.bin'}", ok=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f"prepare pairs2bin: error: {bad}: not a text pairs list")


def test_synthetic_task_is_wired(tmp_path):
    """The synthetic task hands its flags to tfmargin.datasets.synthetic.write_dataset."""
    out = tmp_path / "syn"
    proc = prepare("synthetic", f"--output={out}", "--identities=6", "--images_per_identity=2",
                   "--seed=3", "--workers=1")
    assert "prepare synthetic:" in proc.stdout
    from tfmargin.data.recordio import RecordIO
    with RecordIO(str(out / "train.rec")) as r:
        assert len(r) > 0 and len(r) % 2 == 0
