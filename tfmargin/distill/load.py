"""Loading a teacher signal and checking that it is the one the student's data and teacher
made."""

import json
import os

import numpy as np

from tfmargin.distill.checksums import dataset_fingerprint, sha256_file, weights_sha256
from tfmargin.distill.format import FORMAT, MANIFEST, TeacherSignalError, make_signal
from tfmargin.distill.teacher import Teacher


def _read_manifest(directory):
    path = os.path.join(directory, MANIFEST)
    if not os.path.isdir(directory):
        raise TeacherSignalError(f"{directory}: teacher signal directory does not exist")
    if not os.path.exists(path):
        raise TeacherSignalError(f"{directory}: no {MANIFEST} (not a teacher signal, or its "
                                 "extraction did not finish)")
    try:
        with open(path) as f:
            manifest = json.load(f)
        if manifest.get("format") != FORMAT:
            raise TeacherSignalError(f"{path}: format {manifest.get('format')!r}, expected "
                                     f"{FORMAT!r}")
        for key in ("teacher", "dataset", "centers", "shards", "metadata", "embedding_size",
                    "num_classes", "num_images", "flip"):
            if key not in manifest:
                raise TeacherSignalError(f"{path}: field {key!r} is missing")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as e:
        raise TeacherSignalError(f"{path}: not a valid manifest ({e})") from None
    return manifest


def _check_file(path, sha256):
    if not os.path.isfile(path):
        raise TeacherSignalError(f"{path}: listed in the teacher signal's manifest but missing")
    got = sha256_file(path)
    if got != sha256:
        raise TeacherSignalError(f"{path}: sha256 {got[:16]}... differs from the manifest's "
                                 f"{sha256[:16]}...: the file changed after extraction")


def load_teacher_signal(directory, *, dataset=None, teacher=None, verify=True):
    """Read a teacher signal; returns a TeacherSignal.

    verify: re-hash centers.npy, dataset.json and every shard against the manifest.
    dataset: the .rec (or folders) the student will train on: its fingerprint must be the one
        the signal was made from.
    teacher: a .keras path (its sha256 must match the manifest's; when the signal was made from
        an in-memory teacher, the weights are compared) or a keras Model (weights compared).
    Errors are TeacherSignalError with one line naming the file.
    """
    directory = os.path.abspath(os.fspath(directory))
    manifest = _read_manifest(directory)
    made_from = manifest["dataset"].get("path")
    if dataset is not None:
        fp = dataset_fingerprint(dataset)
        if fp["sha256"] != manifest["dataset"].get("sha256"):
            raise TeacherSignalError(f"teacher signal {directory} was made from {made_from}, not "
                                     f"{fp['path']} (dataset fingerprints differ)")
    if teacher is not None:
        recorded = manifest["teacher"]
        made_by = recorded.get("path") or f"an in-memory {recorded.get('backbone')!r}"
        if isinstance(teacher, (str, os.PathLike)) and recorded.get("sha256"):
            if not os.path.isfile(teacher):
                raise TeacherSignalError(f"{os.fspath(teacher)}: teacher model file does not "
                                         "exist")
            if sha256_file(teacher) != recorded["sha256"]:
                raise TeacherSignalError(f"teacher signal {directory} was made by {made_by}, not "
                                         f"{os.path.abspath(teacher)} (sha256 differs)")
        else:
            given = Teacher.resolve(teacher)
            if weights_sha256(given.backbone) != recorded.get("weights_sha256"):
                raise TeacherSignalError(f"teacher signal {directory} was made by {made_by}, not "
                                         f"{given.where} (weights differ)")
    entries = [manifest["centers"], manifest["metadata"], *manifest["shards"]]
    for entry in entries:
        path = os.path.join(directory, entry["file"])
        if verify:
            _check_file(path, entry["sha256"])
        elif not os.path.isfile(path):
            raise TeacherSignalError(f"{path}: listed in the teacher signal's manifest but "
                                     "missing")
    centers_path = os.path.join(directory, manifest["centers"]["file"])
    try:
        centers = np.load(centers_path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise TeacherSignalError(f"{centers_path}: cannot load ({e})") from None
    shape = [int(manifest["embedding_size"]), int(manifest["num_classes"])]
    if list(centers.shape) != shape or centers.dtype != np.float32:
        raise TeacherSignalError(f"{centers_path}: {centers.dtype} {centers.shape}, but the "
                                 f"manifest says float32 {tuple(shape)}")
    return make_signal(directory, manifest, centers)


def ensure_teacher_signal(teacher, source, directory, *, shuffle=True, seed=0, log=print):
    """The teacher signal of `teacher` (a .keras path) on `source` in `directory`: the one
    there when it matches both (checked as load_teacher_signal does), else extracted anew
    (shuffled: the order training wants) and written in its place."""
    import shutil

    from tfmargin.distill.extract import extract_teacher_signal

    if os.path.exists(os.path.join(directory, MANIFEST)):
        try:
            signal = load_teacher_signal(directory, dataset=source, teacher=teacher)
            log(f"teacher signal: reusing {directory}")
            return signal
        except (TeacherSignalError, OSError) as e:
            log(f"teacher signal: re-extracting ({e})")
            shutil.rmtree(directory)
    log(f"teacher signal: embedding {source} with {teacher}")
    return extract_teacher_signal(teacher, source, directory, shuffle=shuffle, seed=seed,
                                  progress=False, log=log)
