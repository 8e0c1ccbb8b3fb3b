"""The teacher signal on disk: its file names, its error, and the object a reader gets.


    signal = extract_teacher_signal("teacher.keras", "faces_emore/train.rec", "faces_emore/r100")
    signal = load_teacher_signal("faces_emore/r100", dataset="faces_emore/train.rec",
                                 teacher="teacher.keras")
    ds = train_dataset(signal.directory, 512)     # features["teacher"] rides with each image

On disk (`output_dir/`):
  centers.npy              float32 (D, C): the teacher head's class centers, unit-norm columns
  train-0000i-of-0000S.tfrecord   one record per training image (tfmargin.data.tfrecord): the
                           encoded image as stored in the dataset, its label and key, `teacher`
                           (the teacher's float32 embedding of the unflipped image, as the
                           paper) and, with flip=True, `teacher_flip` (of the mirrored image),
                           which lets a student train with flip augmentation. Image i of the
                           dataset (or of its permutation, shuffle=True) is record i // S of
                           shard i % S (the writer's round robin).
  dataset.json             the shard writer's metadata, read by tfmargin.data.train_dataset
  manifest.json            written last: the teacher (file sha256, weights sha256, backbone,
                           embedding size), the dataset (path, fingerprint, images, classes),
                           centers.npy's and every shard's sha256 and record count, whether the
                           embeddings are unit-norm, flip, creation time, tfmargin version.

Extraction is all or nothing: everything is written into `output_dir.partial` and renamed into
place at the end, so an interrupted run leaves neither a manifest nor a partial signal under the
final name, and a signal already there survives a failed re-extraction intact.

Dataset fingerprint (cheap for a 30 GB .rec): sha256 over the .idx file, the `property` file,
the .rec's size and the sha256 of its first and last MiB. It tells apart different datasets,
re-packed or truncated files and a different .idx; it does not notice an in-place edit of a
record in the middle of the .rec (the shards carry their own sha256 for that). Identity folders:
sha256 over every image's relative path and size, in the folder order.

Records are in the dataset's order unless shuffle=True, which writes a seeded permutation; for
identity-sorted data (every insightface .rec) that is what a streaming shuffle buffer needs.
"""

import contextlib
import dataclasses
import os

import numpy as np

from tfmargin.errors import TfmarginError

MANIFEST = "manifest.json"
CENTERS = "centers.npy"
FORMAT = "tfmargin-teacher-signal-v1"
MIB = 1 << 20


class TeacherSignalError(TfmarginError, ValueError):
    """A teacher signal that cannot be made or trusted; the one-line message names the file,
    field or record. `field` names the extract_teacher_signal argument at fault (teacher,
    source, output_dir, centers, batch_size, shards), so that a CLI can name its flag."""

    def __init__(self, message, field=None):
        super().__init__(message)
        self.field = field


@contextlib.contextmanager
def about(field):
    """Errors raised inside concern `field` unless they already name one."""
    try:
        yield
    except TeacherSignalError as e:
        if e.field is None:
            e.field = field
        raise


@dataclasses.dataclass
class TeacherSignal:
    """A teacher signal on disk (see the module docstring)."""
    directory: str
    centers: np.ndarray  # float32 (D, C), unit-norm columns
    files: list  # shard paths, in order
    manifest: dict
    embedding_size: int
    num_classes: int
    num_images: int
    flip: bool  # the shards also hold the embeddings of the flipped images

    def train_dataset(self, batch_size, **kwargs):
        """tfmargin.data.train_dataset over the shards: batches ({"image", "label", "teacher"},
        label); with flip=True and a flip signal, flipped images come with `teacher_flip`."""
        from tfmargin.data.pipeline import train_dataset

        kwargs.setdefault("num_classes", self.num_classes)
        return train_dataset(self.directory, batch_size, **kwargs)


def make_signal(directory, manifest, centers):
    return TeacherSignal(
        directory=directory, centers=centers,
        files=[os.path.join(directory, s["file"]) for s in manifest["shards"]],
        manifest=manifest, embedding_size=int(manifest["embedding_size"]),
        num_classes=int(manifest["num_classes"]), num_images=int(manifest["num_images"]),
        flip=bool(manifest["flip"]))
