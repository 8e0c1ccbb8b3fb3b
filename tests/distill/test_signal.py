"""Teacher signal: shards and centers checked against an independent computation (RecordIO +
decode_image + model.predict, numpy float64 centers), manifest checksums against hashlib, and
every refusal (tampered shard, wrong dataset / teacher, sizes, labels, interrupted runs)."""

import hashlib
import json
import os
import shutil
import warnings

import numpy as np
import pytest
import tensorflow as tf

keras = pytest.importorskip("keras")

from tfmargin.data.images import decode_image, encode_png  # noqa: E402
from tfmargin.data.pipeline import train_dataset  # noqa: E402
from tfmargin.data.recordio import RecordIO, RecordIOWriter, write_insightface_dataset  # noqa
from tfmargin.data.tfrecord import TFRecordShardWriter  # noqa: E402
from tfmargin.distill import (TeacherSignalError, extract_teacher_signal,  # noqa: E402
                                   find_backbone, load_teacher_signal, teacher_centers)

DIM = 24
TINY = "signal_test_tiny"


def tiny_backbone(embedding_size=DIM, name=None):
    """A small image -> (B, D) model whose inference output differs from its training output
    (BatchNormalization with non-trivial moving statistics, Dropout)."""
    image = keras.Input((112, 112, 3), name="image")
    x = keras.layers.Conv2D(8, 5, strides=4)(image)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(16, 3, strides=4, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.5)(x)
    x = keras.layers.Dense(embedding_size, name="embedding_dense")(x)
    out = keras.layers.Activation("linear", name="embedding")(x)
    return keras.Model(image, out, name=name or "tiny")


def tiny_teacher(num_classes, seed):
    """tfmargin.train.build.compiled_classifier around the tiny backbone, with random BN statistics and
    random (non-unit) centers."""
    from tfmargin.heads import MarginHead
    from tfmargin.models import build_backbone
    from tfmargin.models.registry import backbone_names, register_backbone
    from tfmargin.train.build import compiled_classifier

    if TINY not in backbone_names():
        register_backbone(TINY, tiny_backbone)
    keras.utils.set_random_seed(seed)
    model = compiled_classifier(build_backbone(TINY, name="backbone"),
                                MarginHead(num_classes, name="margin_head"), teacher_dim=512)
    rng = np.random.default_rng(seed)
    bn = model.get_layer("backbone").get_layer("bn")
    bn.moving_mean.assign(rng.normal(size=8).astype("float32"))
    bn.moving_variance.assign(rng.uniform(0.2, 3, size=8).astype("float32"))
    head = model.get_layer("margin_head")
    head.assign_centers(rng.normal(size=(DIM, num_classes)).astype("float32") * 3)
    return model


def reference_images(rec_path):
    """uint8 images, labels and keys through RecordIO.read + decode_image (not the pipeline)."""
    with RecordIO(rec_path) as rec:
        keys = [int(k) for k in rec.keys()]
        records = [rec.read(k) for k in keys]
    images = np.stack([decode_image(r.image) for r in records])
    return images, np.array([r.label for r in records]), keys, [r.image for r in records]


def predict(model, images_u8):
    x = (images_u8.astype(np.float32) - 127.5) / 127.5
    return model.predict(x, batch_size=7, verbose=0)


def assert_close(got, want):
    scale = np.abs(want).max()
    assert scale > 1e-2  # the comparison means something
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * scale)


def raw_records(files):
    out = []
    for shard, path in enumerate(files):
        for position, raw in enumerate(tf.data.TFRecordDataset(path)):
            f = tf.train.Example.FromString(raw.numpy()).features.feature
            out.append({"shard": shard, "position": position,
                        "key": int(f["key"].bytes_list.value[0]),
                        "image": f["image"].bytes_list.value[0],
                        "label": f["label"].int64_list.value[0],
                        "teacher": np.float32(f["teacher"].float_list.value),
                        "teacher_flip": (np.float32(f["teacher_flip"].float_list.value)
                                         if "teacher_flip" in f else None)})
    return out


def one_line(excinfo, *names):
    message = str(excinfo.value)
    assert "\n" not in message
    for name in names:
        assert str(name) in message, message
    return message


@pytest.fixture(scope="module")
def world(synthetic, tmp_path_factory):
    root = tmp_path_factory.mktemp("signal")
    data = synthetic
    rec = str(data / "train.rec")
    images, labels, keys, encoded = reference_images(rec)
    num_classes = int(labels.max()) + 1
    teacher = tiny_teacher(num_classes, seed=0)
    teacher_path = str(root / "teacher.keras")
    teacher.save(teacher_path)
    backbone = teacher.get_layer("backbone")
    signal = extract_teacher_signal(teacher_path, rec, str(root / "signal"), flip=True,
                                    shards=3, batch_size=16, log=None, progress=False)
    return {"root": root, "rec": rec, "images": images, "labels": labels, "keys": keys,
            "encoded": encoded, "num_classes": num_classes, "teacher": teacher,
            "teacher_path": teacher_path, "signal": signal,
            "emb": predict(backbone, images), "emb_flip": predict(backbone, images[:, :, ::-1])}


@pytest.mark.backends
def test_shards_hold_the_teachers_embeddings(world):
    s, n = world["signal"], len(world["keys"])
    assert (s.num_images, s.num_classes, s.embedding_size, s.flip) == (n, world["num_classes"],
                                                                        DIM, True)
    records = raw_records(s.files)
    assert len(records) == n
    position_of = {k: i for i, k in enumerate(world["keys"])}
    for r in records:
        i = position_of[r["key"]]
        # Round robin in the dataset's order: image i is record i // 3 of shard i % 3.
        assert (r["shard"], r["position"]) == (i % 3, i // 3)
        assert r["image"] == world["encoded"][i] and r["label"] == world["labels"][i]
    order = [position_of[r["key"]] for r in records]
    assert_close(np.stack([r["teacher"] for r in records]), world["emb"][order])
    assert_close(np.stack([r["teacher_flip"] for r in records]), world["emb_flip"][order])
    # Inference mode: training-mode outputs (batch statistics, dropout) would differ.
    backbone = world["teacher"].get_layer("backbone")
    clone = keras.models.clone_model(backbone)  # a training call moves the BN statistics
    clone.set_weights(backbone.get_weights())
    train_out = clone((world["images"][:8].astype("float32") - 127.5) / 127.5, training=True)
    assert not np.allclose(keras.ops.convert_to_numpy(train_out), world["emb"][:8], atol=1e-3)


@pytest.mark.backends
def test_centers_are_the_normalised_head_weights(world):
    w = keras.ops.convert_to_numpy(world["teacher"].get_layer("margin_head").centers)
    want = w.astype(np.float64) / np.sqrt((w.astype(np.float64) ** 2).sum(axis=0))
    s = world["signal"]
    assert s.centers.dtype == np.float32 and s.centers.shape == (DIM, world["num_classes"])
    np.testing.assert_allclose(s.centers, want, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(np.load(os.path.join(s.directory, "centers.npy")), s.centers)
    for source in (world["teacher"], world["teacher"].get_layer("margin_head"),
                   world["teacher_path"]):
        np.testing.assert_allclose(teacher_centers(source), want, atol=1e-6)


def sha(path, start=0, length=None):
    with open(path, "rb") as f:
        f.seek(start)
        return hashlib.sha256(f.read() if length is None else f.read(length)).hexdigest()


def test_manifest_names_teacher_dataset_and_checksums(world):
    s = world["signal"]
    m = json.load(open(os.path.join(s.directory, "manifest.json")))
    assert m == s.manifest
    assert [os.path.join(s.directory, e["file"]) for e in m["shards"]] == s.files
    for entry in m["shards"]:
        path = os.path.join(s.directory, entry["file"])
        assert entry["sha256"] == sha(path)
        assert entry["records"] == sum(1 for _ in tf.data.TFRecordDataset(path))
    assert sum(e["records"] for e in m["shards"]) == len(world["keys"])
    assert m["centers"]["sha256"] == sha(os.path.join(s.directory, "centers.npy"))
    assert m["metadata"]["sha256"] == sha(os.path.join(s.directory, "dataset.json"))
    assert m["teacher"]["sha256"] == sha(world["teacher_path"])
    assert m["teacher"]["path"] == os.path.abspath(world["teacher_path"])
    assert m["teacher"]["embedding_size"] == DIM and m["teacher"]["backbone"] == "backbone"
    rec = world["rec"]
    d = m["dataset"]
    assert d["path"] == os.path.abspath(rec) and d["kind"] == "rec"
    assert d["idx_sha256"] == sha(rec[:-4] + ".idx") and d["rec_size"] == os.path.getsize(rec)
    assert d["head_sha256"] == sha(rec, 0, 1 << 20)
    assert d["tail_sha256"] == sha(rec, max(0, os.path.getsize(rec) - (1 << 20)))
    assert (d["num_images"], d["num_classes"]) == (len(world["keys"]), world["num_classes"])
    norms = np.linalg.norm(world["emb"].astype(np.float64), axis=1)
    assert m["embeddings"]["normalised"] is False  # the tiny teacher's outputs are not unit
    assert m["embeddings"]["norm_max"] >= norms.max() * (1 - 1e-5)
    assert m["flip"] is True and m["tfmargin_version"] and m["created"].endswith("Z")


@pytest.mark.backends
def test_load_round_trip(world):
    s = world["signal"]
    loaded = load_teacher_signal(s.directory, dataset=world["rec"], teacher=world["teacher_path"])
    assert loaded.files == s.files and loaded.manifest == s.manifest
    np.testing.assert_array_equal(loaded.centers, s.centers)
    # An in-memory teacher is compared by its weights.
    load_teacher_signal(s.directory, teacher=world["teacher"], verify=False)


def copy_signal(world, name):
    out = str(world["root"] / name)
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(world["signal"].directory, out)
    return out


def test_tampered_shard_is_named(world):
    out = copy_signal(world, "tampered")
    shard = os.path.join(out, world["signal"].manifest["shards"][1]["file"])
    with open(shard, "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(TeacherSignalError) as e:
        load_teacher_signal(out)
    one_line(e, shard, "sha256")
    load_teacher_signal(out, verify=False)  # the caller may skip the hashing
    os.remove(os.path.join(out, "centers.npy"))
    with pytest.raises(TeacherSignalError) as e:
        load_teacher_signal(out, verify=False)
    one_line(e, os.path.join(out, "centers.npy"), "missing")


def test_wrong_dataset_is_named(world):
    other = world["root"] / "other"
    write_insightface_dataset(str(other), [(int(lab), enc) for lab, enc in
                                           zip(world["labels"][:10], world["encoded"][:10])])
    with pytest.raises(TeacherSignalError) as e:
        load_teacher_signal(world["signal"].directory, dataset=str(other / "train.rec"),
                            verify=False)
    msg = one_line(e, world["signal"].directory, os.path.abspath(world["rec"]),
                   str(other / "train.rec"))
    assert msg.startswith(f"teacher signal {world['signal'].directory} was made from ")


@pytest.mark.backends
def test_wrong_teacher_is_named(world):
    other = tiny_teacher(world["num_classes"], seed=1)
    other_path = str(world["root"] / "other_teacher.keras")
    other.save(other_path)
    for given in (other_path, other):
        with pytest.raises(TeacherSignalError) as e:
            load_teacher_signal(world["signal"].directory, teacher=given, verify=False)
        one_line(e, world["signal"].directory, "was made by", world["teacher_path"])


def test_size_and_label_checks_come_before_any_work(world, tmp_path):
    out = str(tmp_path / "never")
    teacher = world["teacher_path"]
    with pytest.raises(TeacherSignalError) as e:  # embedding size != centers' D
        extract_teacher_signal(teacher, world["rec"], out, centers=np.ones((16, 14)), log=None)
    one_line(e, teacher, str(DIM), "16")
    assert e.value.field == "centers"
    teacher = world["teacher"]  # in memory from here on: saves loading it again
    with pytest.raises(TeacherSignalError) as e:  # centers' C != the dataset's classes
        extract_teacher_signal(teacher, world["rec"], out, centers=np.ones((DIM, 10)), log=None)
    one_line(e, world["rec"], str(world["num_classes"]), "10")
    assert e.value.field == "source"
    # A .rec without header or property: the class count is unknown, every label is checked.
    bare = str(tmp_path / "bare" / "train.rec")
    with RecordIOWriter(bare) as w:
        for label, enc in zip(world["labels"][:12], world["encoded"][:12]):
            w.write(enc, int(label))
    bad_key = int(np.flatnonzero(world["labels"][:12] >= 2)[0])  # keys start at 0 here
    with pytest.raises(TeacherSignalError) as e:
        extract_teacher_signal(teacher, bare, out, centers=np.ones((DIM, 2)), log=None)
    one_line(e, bare, f"record {bad_key} ", "0..1")
    with pytest.raises(TeacherSignalError) as e:  # a backbone alone has no centers
        extract_teacher_signal(teacher.get_layer("backbone"), world["rec"], out, log=None)
    one_line(e, "centers")
    with pytest.raises(TeacherSignalError) as e:
        extract_teacher_signal(str(tmp_path / "missing.keras"), world["rec"], out, log=None)
    one_line(e, "missing.keras")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(TeacherSignalError) as e:
        extract_teacher_signal(teacher, world["rec"], str(busy), log=None)
    one_line(e, str(busy))
    assert not os.path.exists(out) and os.listdir(busy) == ["notes.txt"]


def _killed_after(monkeypatch, records):
    """Make the shard writer fail once `records` records have been written."""
    import tfmargin.data.tfrecord as tfr

    original, calls = tfr.make_example, {"n": 0}

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > records:
            raise RuntimeError("killed")
        return original(*args, **kwargs)

    monkeypatch.setattr(tfr, "make_example", failing)


def _markers(directory):
    return sorted(n for n in os.listdir(directory) if n.endswith(".tfrecord.json"))


def test_interrupted_extraction_resumes_and_never_shows_a_partial_signal(world, tmp_path,
                                                                          monkeypatch):
    n = len(world["keys"])
    _killed_after(monkeypatch, n // 2)  # 4 shards: the first one or two finish
    fresh = str(tmp_path / "fresh")
    with pytest.raises(RuntimeError):
        extract_teacher_signal(world["teacher_path"], world["rec"], fresh, batch_size=16,
                               shards=4, flip=True, log=None, progress=False)
    assert not os.path.exists(fresh)  # no signal, no manifest under the final name
    done = _markers(fresh + ".partial")
    assert 1 <= len(done) < 4
    kept = {m[:-5]: os.stat(os.path.join(fresh + ".partial", m[:-5])) for m in done}
    monkeypatch.undo()
    logs = []
    s = extract_teacher_signal(world["teacher_path"], world["rec"], fresh, batch_size=16,
                               shards=4, flip=True, log=logs.append, progress=False)
    assert any(f"{len(done)} of this worker's 4 shards already done" in line for line in logs)
    for name, st in kept.items():  # finished shards were kept, not embedded again
        again = os.stat(os.path.join(fresh, name))
        assert (again.st_ino, again.st_mtime_ns) == (st.st_ino, st.st_mtime_ns)
    assert not os.path.exists(fresh + ".partial")
    assert sorted(os.listdir(fresh)) == sorted(
        ["centers.npy", "dataset.json", "manifest.json"] + [f"train-0000{i}-of-00004.tfrecord"
                                                            for i in range(4)])
    records = raw_records(load_teacher_signal(fresh).files)
    position_of = {k: i for i, k in enumerate(world["keys"])}
    order = [position_of[r["key"]] for r in records]
    assert sorted(order) == list(range(n))
    assert [(r["shard"], r["position"]) for r in records] == [(i % 4, i // 4) for i in order]
    assert_close(np.stack([r["teacher"] for r in records]), world["emb"][order])
    assert_close(np.stack([r["teacher_flip"] for r in records]), world["emb_flip"][order])
    assert s.manifest["centers"] == world["signal"].manifest["centers"]


def test_interrupted_re_extraction_keeps_the_old_signal(world, tmp_path, monkeypatch):
    existing = copy_signal(world, "existing")
    _killed_after(monkeypatch, 40)
    with pytest.raises(RuntimeError):
        extract_teacher_signal(world["teacher_path"], world["rec"], existing, batch_size=16,
                               shards=2, log=None, progress=False)
    assert load_teacher_signal(existing).manifest == world["signal"].manifest
    # Another extraction into the same place is refused while the unfinished one is there
    # (it may be other workers' work), naming what differs; once it is removed, the new one
    # replaces the old signal, leaving no side directories.
    monkeypatch.undo()
    with pytest.raises(TeacherSignalError) as e:
        extract_teacher_signal(world["teacher"], world["rec"], existing, shards=1,
                               log=None, progress=False, shuffle=True, seed=1)
    one_line(e, existing + ".partial", "other centers, shards, shuffle, teacher",
             "remove it to start over")
    assert load_teacher_signal(existing).manifest == world["signal"].manifest
    shutil.rmtree(existing + ".partial")
    s = extract_teacher_signal(world["teacher"], world["rec"], existing, shards=1,
                               log=None, progress=False, shuffle=True, seed=1)
    assert len(load_teacher_signal(existing).files) == 1 and not s.flip
    records = raw_records(s.files)
    permutation = np.random.default_rng(1).permutation(len(world["keys"]))
    assert [r["key"] for r in records] == [world["keys"][i] for i in permutation]
    assert [r["label"] for r in records] == list(world["labels"][permutation])
    assert_close(np.stack([r["teacher"] for r in records]), world["emb"][permutation])
    assert sorted(os.listdir(existing)) == sorted(
        ["centers.npy", "dataset.json", "manifest.json", "train-00000-of-00001.tfrecord"])
    assert not any(os.path.exists(existing + x) for x in (".partial", ".old"))


def test_workers_share_an_extraction(world, tmp_path):
    """Two workers embed disjoint shards; only when both are done is there a signal, and it
    holds what one process writes."""
    from tfmargin.distill import merge_teacher_signal

    out = str(tmp_path / "shared")
    common = dict(batch_size=16, shards=3, flip=True, log=None, progress=False)
    assert extract_teacher_signal(world["teacher_path"], world["rec"], out, num_workers=2,
                                  worker_index=1, **common) is None
    assert _markers(out + ".partial") == ["train-00001-of-00003.tfrecord.json"]
    assert not os.path.exists(out)
    with pytest.raises(TeacherSignalError, match="2 of 3 shards missing or not verified"):
        merge_teacher_signal(out, log=None)
    with pytest.raises(TeacherSignalError, match="worker_index must be in 0..1"):
        extract_teacher_signal(world["teacher_path"], world["rec"], out, num_workers=2,
                               worker_index=2, **common)
    s = extract_teacher_signal(world["teacher_path"], world["rec"], out, num_workers=2,
                               worker_index=0, **common)  # the last one merges
    assert [sh["sha256"] for sh in s.manifest["shards"]] == [
        sh["sha256"] for sh in world["signal"].manifest["shards"]]
    assert s.manifest["dataset"] == world["signal"].manifest["dataset"]


def test_corrupt_image_is_named(world, tmp_path):
    rec = str(tmp_path / "corrupt" / "train.rec")
    items = [(int(lab), enc) for lab, enc in zip(world["labels"][:10], world["encoded"][:10])]
    items[6] = (items[6][0], b"\xff\xd8\xff not a jpeg")
    write_insightface_dataset(os.path.dirname(rec), items)
    with RecordIO(rec) as r:
        bad_key = [k for k in r.keys() if r.read(int(k)).image.startswith(b"\xff\xd8\xff not")]
    out = str(tmp_path / "out")
    with pytest.raises(TeacherSignalError) as e:
        extract_teacher_signal(world["teacher"], rec, out, centers=np.ones((DIM, 2)),
                               batch_size=4, log=None, progress=False)
    one_line(e, rec, f"record {bad_key[0]}")
    assert not os.path.exists(out) and not os.path.exists(out + ".partial")


def test_train_dataset_pairs_teacher_with_labels(world):
    """The pipeline reads the shards; each image comes with its own label and embedding, the
    flipped embedding when the pipeline flipped it."""
    s = world["signal"]
    u8 = world["images"].reshape(len(world["images"]), -1)
    lookup = {row.tobytes(): i for i, row in enumerate(u8)}
    lookup_flip = {world["images"][i, :, ::-1].tobytes(): i for i in range(len(u8))}
    seen = {False: 0, True: 0}
    for flip in (False, True):
        ds = train_dataset(s.directory, 10, flip=flip, seed=3)
        assert ds.teacher_dim == DIM
        for features, labels in ds:
            x = np.round(features["image"].numpy() * 127.5 + 127.5).astype(np.uint8)
            for j in range(len(x)):
                raw = x[j].tobytes()
                flipped = raw not in lookup
                i = lookup_flip[raw] if flipped else lookup[raw]
                seen[flipped] += 1
                assert labels[j] == world["labels"][i]
                want = world["emb_flip" if flipped else "emb"][i]
                assert_close(features["teacher"][j].numpy()[None], want[None])
    assert seen[True] > 5 and seen[False] > len(u8)  # flipping happened, and not always
    # The convenience method passes the signal's class count.
    assert s.train_dataset(10).num_classes == world["num_classes"]


def test_backbone_teacher_on_identity_folders(world, tmp_path):
    """A bare backbone (with centers given) on an identity-folder source; and a classifier with
    the backbone inlined (no nested model) is searched by its "embedding" layer."""
    root = tmp_path / "folders"
    picks = [0, 1, 2, 5, 6, 7]  # two identities of the synthetic set (5 images each)
    for i in picks:
        folder = root / f"id{world['labels'][i]}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:03d}.png").write_bytes(encode_png(world["images"][i]))
    backbone = world["teacher"].get_layer("backbone")
    centers = np.random.default_rng(0).normal(size=(DIM, 2))
    s = extract_teacher_signal(backbone, str(root), str(tmp_path / "sig"), centers=centers,
                               log=None, progress=False)
    assert not s.flip and s.num_images == 6 and s.manifest["teacher"]["sha256"] is None
    got = {}
    for raw in tf.data.TFRecordDataset(s.files):
        f = tf.train.Example.FromString(raw.numpy()).features.feature
        got[f["key"].bytes_list.value[0].decode()] = (f["label"].int64_list.value[0],
                                                       np.float32(f["teacher"].float_list.value))
    for i in picks:
        label, emb = got[os.path.join(f"id{world['labels'][i]}", f"{i:03d}.png")]
        assert label == world["labels"][i]  # folders id0, id1 sort as the labels do
        assert_close(emb[None], world["emb"][i][None])
    np.testing.assert_allclose(s.centers, centers / np.linalg.norm(centers, axis=0), atol=1e-6)



def test_find_backbone_in_other_layouts():
    image = keras.Input((112, 112, 3), name="image")
    label = keras.Input((), dtype="int32", name="label")
    nested = tiny_backbone(name="not_called_backbone")
    model = keras.Model({"image": image, "label": label}, keras.layers.Dense(3)(nested(image)))
    assert find_backbone(model) is nested  # found by its "embedding" output layer
    # Inlined: the backbone's layers sit in the classifier itself.
    conv, pool = keras.layers.Conv2D(4, 8, strides=8), keras.layers.GlobalAveragePooling2D()
    dense = keras.layers.Dense(DIM)
    features = pool(conv(image))
    emb = keras.layers.Activation("linear", name="embedding")(dense(features))
    inlined = keras.Model({"image": image, "label": label}, keras.layers.Dense(3)(emb))
    found = find_backbone(inlined)
    batch = np.random.default_rng(1).uniform(-1, 1, (2, 112, 112, 3)).astype("float32")
    want = keras.ops.convert_to_numpy(dense(pool(conv(batch))))
    assert tuple(found.outputs[0].shape) == (None, DIM)
    np.testing.assert_allclose(found.predict(batch, verbose=0), want, rtol=1e-5, atol=1e-6)
    headless = keras.Model({"image": image, "label": label}, keras.layers.Dense(3)(features))
    with pytest.raises(TeacherSignalError) as e:
        find_backbone(headless)
    one_line(e, "cannot find the embedding backbone")


def test_rerunning_a_finished_extraction_changes_nothing(world, tmp_path):
    """The same call again finds its own verified signal and keeps it, file for file; another
    call (other shards) extracts anew."""
    out = str(tmp_path / "again")
    common = dict(batch_size=16, flip=True, log=None, progress=False)
    extract_teacher_signal(world["teacher_path"], world["rec"], out, shards=3, **common)
    before = {n: os.stat(os.path.join(out, n)) for n in os.listdir(out)}
    logs = []
    s = extract_teacher_signal(world["teacher_path"], world["rec"], out, shards=3,
                               **{**common, "log": logs.append})
    assert any("already holds this extraction, verified; kept" in line for line in logs)
    after = {n: os.stat(os.path.join(out, n)) for n in os.listdir(out)}
    assert {n: (st.st_ino, st.st_mtime_ns) for n, st in after.items()} == {
        n: (st.st_ino, st.st_mtime_ns) for n, st in before.items()}
    assert s.manifest["shards"] == load_teacher_signal(out).manifest["shards"]
    s2 = extract_teacher_signal(world["teacher_path"], world["rec"], out, shards=2, **common)
    assert len(s2.files) == 2


def test_an_explicit_merge_waits_for_a_live_merger_and_takes_over_from_a_dead_one(
        world, tmp_path, monkeypatch):
    """--merge never takes the lock from a merger that may still run (a live process of this
    host, or one on another host); from one that is gone it takes over and finishes."""
    import json
    import signal as signals
    import socket
    import subprocess
    import sys

    from tfmargin.distill import extract, merge_teacher_signal

    out = str(tmp_path / "shared")
    common = dict(batch_size=16, shards=3, flip=False, log=None, progress=False)
    extract_teacher_signal(world["teacher_path"], world["rec"], out, num_workers=2,
                           worker_index=1, **common)

    def killed(*args):
        raise KeyboardInterrupt  # the last worker dies as it starts the merge

    monkeypatch.setattr(extract, "_merge", killed)
    with pytest.raises(KeyboardInterrupt):
        extract_teacher_signal(world["teacher_path"], world["rec"], out, num_workers=2,
                               worker_index=0, **common)
    monkeypatch.undo()
    lock = os.path.join(out + ".partial", extract.MERGING)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        for owner, who in (({"host": socket.gethostname(), "pid": sleeper.pid},
                            f"process {sleeper.pid} is"),
                           ({"host": "other-host", "pid": 1}, "process 1 on other-host is")):
            os.makedirs(lock, exist_ok=True)
            with open(os.path.join(lock, "owner.json"), "w") as f:
                json.dump(owner, f)
            with pytest.raises(TeacherSignalError, match=f"merging.lock: {who} writing"):
                merge_teacher_signal(out, log=None)
            assert not os.path.exists(out)
    finally:
        sleeper.send_signal(signals.SIGKILL)
        sleeper.wait()
    with open(os.path.join(lock, "owner.json"), "w") as f:
        json.dump({"host": socket.gethostname(), "pid": sleeper.pid}, f)  # now gone
    s = merge_teacher_signal(out, log=None)
    assert s.num_images == world["signal"].num_images and not os.path.exists(lock)
