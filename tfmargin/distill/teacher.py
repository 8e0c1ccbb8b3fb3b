"""The teacher: its embedding backbone and its class centers, from a model or a file."""

import dataclasses
import os

import numpy as np

from tfmargin.distill.checksums import sha256_file, weights_sha256
from tfmargin.distill.format import TeacherSignalError
from tfmargin.errors import ModelFileError


def _where(model, path=None):
    return os.fspath(path) if path is not None else f"model {getattr(model, 'name', model)!r}"


def _load_model(path):
    from tfmargin.models.io import load_model

    try:
        return load_model(path)
    except ModelFileError as e:
        raise TeacherSignalError(f"teacher: {e}") from None


def _unit_columns(centers, where):
    centers = np.asarray(centers)
    if centers.ndim != 2 or 0 in centers.shape:
        raise TeacherSignalError(f"{where}: centers must be a (D, C) array, got shape "
                                 f"{centers.shape}")
    c64 = centers.astype(np.float64)
    if not np.isfinite(c64).all():
        raise TeacherSignalError(f"{where}: centers hold NaN or inf")
    norms = np.linalg.norm(c64, axis=0)
    if (norms == 0).any():
        raise TeacherSignalError(f"{where}: class center {int(np.argmin(norms))} is all zeros")
    return (c64 / norms).astype(np.float32)


def teacher_centers(model):
    """The teacher's class centers as float32 (D, C) with unit-norm columns, from a classifier
    keras.Model holding a MarginHead (or any layer exposing `.centers`), a head layer, or a
    path to a saved classifier."""
    from tfmargin.models.io import find_centers

    if isinstance(model, (str, os.PathLike)):
        where, model = os.fspath(model), _load_model(model)
    else:
        where = _where(model)
    try:
        centers = find_centers(model, where)
    except ModelFileError as e:
        raise TeacherSignalError(str(e)) from None
    return _unit_columns(centers, f"{where} centers")


def find_backbone(model, where=None):
    """The embedding model inside a teacher (tfmargin.models.find_backbone), TeacherSignalError
    when there is none."""
    from tfmargin.models.io import find_backbone as find

    try:
        return find(model, where or _where(model))
    except ModelFileError as e:
        raise TeacherSignalError(str(e)) from None


@dataclasses.dataclass
class Teacher:
    model: object  # the keras Model given or loaded
    backbone: object
    where: str
    path: str | None
    embedding_size: int
    image_size: int

    @classmethod
    def resolve(cls, teacher, teacher_path=None):
        import keras

        if isinstance(teacher, (str, os.PathLike)):
            teacher_path = os.fspath(teacher)
            teacher = _load_model(teacher_path)
        if not isinstance(teacher, keras.Model):
            raise TeacherSignalError(f"teacher: expected a keras Model or a .keras path, got "
                                     f"{type(teacher).__name__}")
        where = _where(teacher, teacher_path)
        backbone = find_backbone(teacher, where)
        shape = tuple(backbone.inputs[0].shape)
        if shape[-1] != 3 or not shape[1] or shape[1] != shape[2]:
            raise TeacherSignalError(f"{where}: the backbone takes {shape[1:]} inputs; expected "
                                     "square RGB images (H, H, 3)")
        return cls(teacher, backbone, where, teacher_path, int(backbone.outputs[0].shape[-1]),
                   int(shape[1]))

    def describe(self):
        name = self.backbone.name
        return {
            "path": os.path.abspath(self.path) if self.path else None,
            "sha256": sha256_file(self.path) if self.path else None,
            "weights_sha256": weights_sha256(self.backbone),
            "backbone": name,
            "params": int(self.backbone.count_params()),
            "embedding_size": self.embedding_size,
            "image_size": self.image_size,
        }


def resolve_centers(centers, teacher):
    if centers is None:
        if teacher.backbone is teacher.model:
            raise TeacherSignalError(f"{teacher.where}: an embedding model without a head; give "
                                     "the class centers (centers=, --centers), or "
                                     "centers='class_means' to build them from its embeddings")
        return teacher_centers(teacher.model), f"{teacher.where} head"
    if isinstance(centers, (str, os.PathLike)):
        path = os.fspath(centers)
        try:
            centers = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise TeacherSignalError(f"{path}: cannot load centers ({e})") from None
        return _unit_columns(centers, path), path
    return _unit_columns(centers, "centers"), "centers"
