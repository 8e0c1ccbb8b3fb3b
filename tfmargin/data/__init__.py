"""Data: insightface RecordIO and verification .bin files without mxnet, TFRecord shards,
identity folders, the tf.data training / verification pipelines, and face alignment.

    from tfmargin.data import RecordIO, train_dataset, load_verification_bin, align_face
"""

from tfmargin.data.align import (ARCFACE_TEMPLATE, Face, align_face, detect_and_align,
                                 similarity_matrix, template, umeyama)
from tfmargin.data.convert import Summary, align_photos, convert_to_rec, convert_to_tfrecord
from tfmargin.data.folders import ImageFolder
from tfmargin.data.images import CorruptImageError, decode_image, encode_jpeg
from tfmargin.data.pairs import Pairs, load_pair_images, pairs_to_bin, read_pairs
from tfmargin.data.pipeline import (PipelineStats, normalize, skipped_images_report,
                                    train_dataset, verification_dataset)
from tfmargin.data.recordio import (LabelError, Record, RecordIO, RecordIOError, RecordIOWriter,
                                    write_insightface_dataset)
from tfmargin.data.tfrecord import TFRecordShardWriter, make_example, tfrecord_dataset
from tfmargin.data.verification_bin import (UnsafePickleError, load_verification_bin,
                                            save_verification_bin)

__all__ = [
    "ARCFACE_TEMPLATE", "CorruptImageError", "Face", "ImageFolder", "LabelError",
    "PipelineStats", "Record", "RecordIO", "RecordIOError", "RecordIOWriter", "Summary",
    "TFRecordShardWriter", "UnsafePickleError", "align_face", "align_photos", "convert_to_rec",
    "convert_to_tfrecord", "decode_image", "detect_and_align", "encode_jpeg",
    "Pairs", "load_pair_images", "load_verification_bin", "make_example", "normalize", "pairs_to_bin", "read_pairs",
    "save_verification_bin",
    "similarity_matrix", "skipped_images_report", "template", "tfrecord_dataset",
    "train_dataset", "umeyama", "verification_dataset", "write_insightface_dataset",
]
