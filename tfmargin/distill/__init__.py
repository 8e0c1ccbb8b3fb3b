"""Distillation's input: the teacher signal, computed once from a teacher and a dataset.

    signal = extract_teacher_signal("teacher.keras", "faces_emore/train.rec", "faces_emore/r100")
    signal = load_teacher_signal("faces_emore/r100", dataset="faces_emore/train.rec",
                                 teacher="teacher.keras")

format.py (the files, TeacherSignal, TeacherSignalError), checksums.py (what ties a signal to
its teacher and data), teacher.py (backbone and centers of a teacher), reader.py (the images in
order), extract.py (writing), load.py (reading and checking), margins.py (what
MarginDistillation's margins come to on it), aligned.py (its embeddings in the dataset's
order, for samplers that read by position). The students' heads that use it are in
tfmargin.heads; the training loop in tfmargin.train.
"""

from tfmargin.distill.aligned import teacher_by_position
from tfmargin.distill.checksums import dataset_fingerprint, sha256_file, weights_sha256
from tfmargin.distill.extract import extract_teacher_signal, merge_teacher_signal
from tfmargin.distill.format import CENTERS, FORMAT, MANIFEST, TeacherSignal, TeacherSignalError
from tfmargin.distill.load import ensure_teacher_signal, load_teacher_signal
from tfmargin.distill.margins import mean_teacher_margin
from tfmargin.distill.teacher import find_backbone, teacher_centers

__all__ = ["CENTERS", "FORMAT", "MANIFEST", "TeacherSignal", "TeacherSignalError",
           "dataset_fingerprint", "ensure_teacher_signal", "extract_teacher_signal",
           "find_backbone", "load_teacher_signal", "mean_teacher_margin", "merge_teacher_signal",
           "sha256_file",
           "teacher_by_position", "teacher_centers", "weights_sha256"]
