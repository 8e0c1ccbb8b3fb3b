"""The library's error family: every error tfmargin raises on purpose derives from
TfmarginError, so a caller (and every CLI) can tell an expected failure, reported in one line
naming the file, flag or record, from a bug."""


class TfmarginError(Exception):
    """Base of every error tfmargin raises on purpose."""


class ModelFileError(TfmarginError, ValueError):
    """A model file that is missing, not a Keras model, or holds no embedding backbone."""
