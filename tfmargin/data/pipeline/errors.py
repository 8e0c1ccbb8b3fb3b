"""The pipeline's edge: TensorFlow raises what goes wrong inside a tf.data pipeline as its own
errors (InvalidArgumentError with a page of graph context, DataLossError "corrupted record at
184831" naming no file). `named_errors(source)` turns them into one DataPipelineError line that
names the file, the record or shard, and what is wrong with it.

    with named_errors("faces_emore"):
        for features, labels in train_dataset("faces_emore", 512):
            ...

train() wraps its model.fit the same way.
"""

import contextlib
import os

from tfmargin.errors import TfmarginError, op_message


class DataPipelineError(TfmarginError, ValueError):
    """A training source that broke while it was streamed; the message names the file."""


def _own_message(message, where):
    """Our own in-pipeline errors (strict decode, RecordIO reads, label checks) already start
    with the source's path: that line, without TensorFlow's wrapping."""
    for anchor in {where, os.path.abspath(where)}:
        for sep in (": ", os.sep):  # the path as a path, not a word inside TensorFlow's text
            at = message.find(anchor + sep)
            if at >= 0 and (at == 0 or not message[at - 1].isalnum()):
                return message[at:].splitlines()[0].strip().rstrip("]}'\"").strip()
    return None


def describe(source, error):
    """The DataPipelineError (or TFRecordError) for a TensorFlow error from `source`'s stream."""
    from tfmargin.data.sources import source_kind

    where = os.fspath(source)
    message = getattr(error, "message", None) or str(error)
    own = _own_message(message, where)
    if own:
        return DataPipelineError(own)
    if where.endswith(".bin") and os.path.isfile(where):  # verification_dataset's source
        from tfmargin.data.images import decode_image
        from tfmargin.data.verification_bin import load_verification_encoded

        try:
            for i, data in enumerate(load_verification_encoded(where)[0]):
                decode_image(data, f"{where}: image {i}")
        except TfmarginError as e:
            return e
    try:
        kind = source_kind(where)
    except ValueError:
        kind = None
    if kind == "tfrecord":  # a full read of the shards finds the shard and record
        from tfmargin.data.tfrecord import TFRecordError, check_shards

        try:
            check_shards(where)  # finds the shard and record
        except TFRecordError as e:
            return e
    return DataPipelineError(f"{where}: the input pipeline failed: {op_message(error, 300)}")


@contextlib.contextmanager
def named_errors(source):
    """Re-raise TensorFlow errors of the block as one line naming `source`'s file / record."""
    import tensorflow as tf

    try:
        yield
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError, tf.errors.UnknownError,
            tf.errors.OutOfRangeError, tf.errors.FailedPreconditionError) as e:
        raise describe(source, e) from None
