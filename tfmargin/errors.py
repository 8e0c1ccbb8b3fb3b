"""The library's error family: every error tfmargin raises on purpose derives from
TfmarginError, so a caller (and every CLI) can tell an expected failure, reported in one line
naming the file, flag or record, from a bug."""


class TfmarginError(Exception):
    """Base of every error tfmargin raises on purpose."""


class ModelFileError(TfmarginError, ValueError):
    """A model file that is missing, not a Keras model, or holds no embedding backbone."""


def op_message(error, limit=200):
    """The first line of a TensorFlow op error without its graph wrapping: eager iterators
    prefix `{{function_node __wrapped__IteratorGetNext...}}` and suffix `[Op:IteratorGetNext]`,
    which name no file and hide what is wrong."""
    import re

    text = getattr(error, "message", None) or str(error) or type(error).__name__
    line = next((s for s in text.splitlines() if s.strip()), type(error).__name__)
    line = re.sub(r"^\s*\{\{function_node [^}]*\}\}\s*", "", line)
    line = re.sub(r"\s*\[Op:\w+\].*$", "", line)  # "[Op:IteratorGetNext] name: "
    return line.strip()[:limit] or type(error).__name__
