"""Data: insightface RecordIO and verification .bin files without mxnet, TFRecord shards,
identity folders, the tf.data training / verification pipelines, and face alignment.

    from tfmargin.data import RecordIO, train_dataset, load_verification_bin, align_face

Names are bound on first use, so `tfmargin.data.recordio`, `.align` and `.synthetic` import
without TensorFlow: the lent GPU machines have JAX and no TensorFlow, and read `.rec` files
there with a Pillow decoder (`tfmargin.data.images`).
"""

import importlib

_NAMES = {
    "tfmargin.data.align": ("ARCFACE_TEMPLATE", "Face", "align_face", "detect_and_align",
                            "similarity_matrix", "template", "umeyama"),
    "tfmargin.data.check": ("check_dataset",),
    "tfmargin.data.convert": ("Summary", "align_photos", "convert_to_rec", "convert_to_tfrecord"),
    "tfmargin.data.folders": ("ImageFolder",),
    "tfmargin.data.images": ("CorruptImageError", "decode_image", "encode_jpeg"),
    "tfmargin.data.pairs": ("Pairs", "load_pair_images", "pairs_to_bin", "read_pairs"),
    "tfmargin.data.pipeline": ("PipelineStats", "normalize", "skipped_images_report",
                               "train_dataset", "verification_dataset"),
    "tfmargin.data.recordio": ("LabelError", "Record", "RecordIO", "RecordIOError",
                               "RecordIOWriter", "write_insightface_dataset"),
    "tfmargin.data.tfrecord": ("TFRecordShardWriter", "make_example", "tfrecord_dataset"),
    "tfmargin.data.verification_bin": ("UnsafePickleError", "load_verification_bin",
                                       "save_verification_bin"),
}
_MODULE_OF = {name: module for module, names in _NAMES.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'tfmargin.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
