"""tfmargin: margin-based softmax face recognition and MarginDistillation for Keras 3.

Sub-packages follow the pipeline and depend only downward:
data -> models / heads / losses -> train -> evaluate -> export -> cli.
Importing `tfmargin` itself is cheap; the sub-packages pull in Keras / TensorFlow.
"""

__version__ = "0.1.0"

from tfmargin.errors import TfmarginError  # noqa: E402  (cheap: no Keras, no TensorFlow)

__all__ = ["TfmarginError", "__version__"]
