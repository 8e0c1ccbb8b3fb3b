"""The reference face-ID pipeline end to end on whole, unaligned synthetic photos: the shipped
demo teacher (savedmodels/demo_teacher, trained on synthetic identities 0-209) exported to int8
with its thresholds measured on identities it never saw, then enroll / identify / verify through
the CLI with the landmarks the renderer knows (MTCNN does not find cartoon faces reliably; the
alignment, preprocessing, flip-sum and decisions are the pipeline's own)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEACHER = os.path.join(ROOT, "savedmodels", "demo_teacher", "classifier.keras")
PEOPLE = (270, 271, 272)   # enrolled: identities the model never trained on
IMPOSTOR = 273
THRESHOLD_IDS = range(280, 310)  # 30 other unseen identities x 5 images: 10,500 impostor pairs


def faceid(*args, ok=True):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-m", "tfmargin.cli.faceid", *args], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=300)
    if ok:
        assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from tfmargin.datasets.synthetic import render_identity
    from tfmargin.datasets.synthetic.scene import write_scenes
    from tfmargin.export import export_tflite

    root = tmp_path_factory.mktemp("faceid")
    images = np.concatenate([render_identity(0, i, 5, encode=False) for i in THRESHOLD_IDS])
    labels = np.repeat(np.arange(len(THRESHOLD_IDS)), 5)
    np.savez(root / "held_out.npz", probe=images[0::5], probe_labels=labels[0::5],
             gallery=np.delete(images, np.s_[0::5], 0),
             gallery_labels=np.delete(labels, np.s_[0::5]))
    model = str(root / "student_int8.tflite")
    export_tflite(TEACHER, model, "int8", representative=images, num_images=100,
                  threshold_set=str(root / "held_out.npz"))
    # photos in good conditions ("easy": little pose, light and occlusion), as enrollment and
    # unlock photos are; at the training set's own difficulty this 91 %-pair-accuracy model
    # gives genuine pairs of one photo each cosines of 0.3-0.8 and impostors up to 0.6, too
    # close for rank-1 among three people to be certain
    photos = write_scenes(root / "photos", 0, [*PEOPLE, IMPOSTOR], 3, difficulty="easy")
    return root, model, photos


def test_enroll_identify_verify_on_unaligned_photos(setup):
    root, model, photos = setup
    gallery = str(root / "people.npz")
    for person in PEOPLE:
        proc = faceid("enroll", f"--model={model}", f"--gallery={gallery}",
                      f"--name=id{person}", "--detector=landmarks", photos[person][0])
        assert json.loads(proc.stdout)["enrolled"] == f"id{person}"
    others = [p for person in PEOPLE for p in photos[person][1:]]
    proc = faceid("identify", f"--model={model}", f"--gallery={gallery}",
                  "--detector=landmarks", *others, photos[IMPOSTOR][0])
    faces = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(faces) == len(others) + 1
    for face in faces[:-1]:  # every enrolled person is found again, on other photos
        assert face["name"] == os.path.basename(face["photo"]).split("_")[0]
    impostor = faces[-1]
    assert not impostor["match"] and impostor["cosine"] < impostor["threshold"]
    # the threshold is the file's own, at FAR 1e-3
    from tfmargin.faceid import FaceModel
    assert impostor["threshold"] == pytest.approx(FaceModel(model).threshold(1e-3), abs=1e-6)
    same = json.loads(faceid("verify", f"--model={model}", "--detector=landmarks",
                             *photos[PEOPLE[0]][:2]).stdout)
    other = json.loads(faceid("verify", f"--model={model}", "--detector=landmarks",
                              photos[PEOPLE[0]][0], photos[IMPOSTOR][0]).stdout)
    assert same["cosine"] > other["cosine"] and not other["match"]
    assert same["match"] == (same["cosine"] >= same["threshold"])


def test_the_pipeline_matches_an_independent_reading(setup):
    """The embedding of an aligned face equals LiteRT run by hand with the contract's numbers
    (input scale and zero point, flip-sum, dequantised, unit norm)."""
    from ai_edge_litert.interpreter import Interpreter

    from tfmargin.data.align import align_face
    from tfmargin.faceid import FaceModel, LandmarksFile
    from tfmargin.faceid.pipeline import read_photo

    root, model, photos = setup
    photo = photos[PEOPLE[1]][0]
    image = read_photo(photo)
    (det,) = LandmarksFile()(image, photo)
    face = align_face(image, det.landmarks)
    got = FaceModel(model).embed(face)
    it = Interpreter(model_path=model)
    it.allocate_tensors()
    x, y = it.get_input_details()[0], it.get_output_details()[0]
    total = 0
    for img in (face, face[:, ::-1]):
        it.set_tensor(x["index"], ((img.astype(np.float32) - 127.5) / 127.5)[None])
        it.invoke()
        total = total + it.get_tensor(y["index"])[0].astype(np.float64)
    np.testing.assert_allclose(got, total / np.linalg.norm(total), atol=1e-6)


def test_a_gallery_of_another_model_and_bad_input_are_refused(setup, tmp_path):
    from tfmargin.faceid import FaceModel, Gallery

    root, model, photos = setup
    other = Gallery(str(tmp_path / "other.npz"), "0" * 64, ["x"], np.ones((1, 512)) / 512 ** .5)
    other.save()
    proc = faceid("identify", f"--model={model}", f"--gallery={other.path}",
                  "--detector=landmarks", photos[PEOPLE[0]][0], ok=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith(
        f"error: {other.path}: made with another model")
    proc = faceid("verify", f"--model={model}", "--detector=landmarks",
                  str(tmp_path / "nothere.png"), photos[PEOPLE[0]][0], ok=False)
    assert proc.returncode == 1 and "nothere.png" in proc.stderr.strip().splitlines()[-1]
    no_meta = tmp_path / "plain.tflite"
    data = open(model, "rb").read()
    no_meta.write_bytes(data[:data.index(b"PK\x03\x04")])
    with pytest.raises(Exception, match="no tfmargin metadata"):
        FaceModel(str(no_meta))
    assert len(Gallery.open(other.path, type("M", (), {"sha256": "0" * 64})()).names) == 1


def test_faceid_runs_without_tensorflow(setup):
    """LiteRT, numpy and Pillow only: TensorFlow and Keras are never imported."""
    root, model, photos = setup
    code = ("import sys, json; from tfmargin.faceid import FaceModel, LandmarksFile, verify; "
            f"r = verify(FaceModel({model!r}), LandmarksFile(), {photos[PEOPLE[0]][0]!r}, "
            f"{photos[PEOPLE[0]][1]!r}); "
            "bad = [m for m in ('tensorflow', 'keras', 'tf_keras') if m in sys.modules]; "
            "print(json.dumps(bad))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.splitlines()[-1]) == []


def test_integer_io_files_are_fed_their_quantised_pixels(setup, tmp_path):
    """A full-integer file with int8 input: FaceModel feeds q = p - 128 (the contract's
    half-up rounding), which an app computes from the bytes; checked against LiteRT fed
    exactly that by hand, and against the embedding the thresholds are measured with."""
    from ai_edge_litert.interpreter import Interpreter

    from tfmargin.data.align import align_face
    from tfmargin.evaluate import embed
    from tfmargin.export import export_tflite
    from tfmargin.faceid import FaceModel, LandmarksFile
    from tfmargin.faceid.pipeline import read_photo

    root, _, photos = setup
    held_out = np.load(root / "held_out.npz")
    path = export_tflite(TEACHER, str(tmp_path / "int8_io.tflite"), "int8", integer_io=True,
                         representative=held_out["gallery"][:60], num_images=60)
    model = FaceModel(path)
    q = model.contract["input"]["quantization"]
    assert model.contract["input"]["dtype"] == "int8" and q["zero_point"] == -1
    photo = photos[PEOPLE[2]][0]
    image = read_photo(photo)
    face = align_face(image, LandmarksFile()(image, photo)[0].landmarks)
    it = Interpreter(model_path=path)
    it.allocate_tensors()
    x, y = it.get_input_details()[0], it.get_output_details()[0]
    total = 0
    for img in (face, face[:, ::-1]):
        it.set_tensor(x["index"], (img.astype(np.int16) - 128).astype(np.int8)[None])
        it.invoke()
        scale, zero = y["quantization"]
        total = total + (it.get_tensor(y["index"])[0].astype(np.float64) - zero) * scale
    got = model.embed(face)
    np.testing.assert_allclose(got, total / np.linalg.norm(total), atol=1e-6)
    assert float(got @ embed(path, face[None])[0]) > 0.99999


def test_two_enrolls_at_once_both_land(setup, tmp_path, monkeypatch):
    """enroll reads, adds and saves under a lock: with the window between read and save made
    wide, two concurrent enrolls still keep both people (without the lock one is lost)."""
    import threading
    import time

    from tfmargin.faceid import FaceModel, Gallery, LandmarksFile, enroll

    root, model_path, photos = setup
    save = Gallery.save
    monkeypatch.setattr(Gallery, "save", lambda self: (time.sleep(0.5), save(self))[1])
    gallery = str(tmp_path / "people.npz")
    models = [FaceModel(model_path), FaceModel(model_path)]
    threads = [threading.Thread(target=enroll, args=(models[i], LandmarksFile(), gallery,
                                                     f"id{person}", [photos[person][0]]))
               for i, person in enumerate(PEOPLE[:2])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(Gallery.open(gallery, models[0]).names) == ["id270", "id271"]


def test_a_photo_without_a_face_gets_its_own_line(setup, tmp_path):
    import shutil

    root, model, photos = setup
    gallery = str(tmp_path / "g.npz")
    faceid("enroll", f"--model={model}", f"--gallery={gallery}", "--name=a",
           "--detector=landmarks", photos[PEOPLE[0]][0])
    empty = str(tmp_path / "empty.png")
    shutil.copy(photos[PEOPLE[0]][1], empty)
    with open(empty + ".landmarks.json", "w") as f:
        f.write("[]")
    proc = faceid("identify", f"--model={model}", f"--gallery={gallery}",
                  "--detector=landmarks", empty)
    assert json.loads(proc.stdout) == {"photo": empty, "faces": 0}
