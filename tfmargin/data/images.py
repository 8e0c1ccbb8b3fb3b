"""Image decode / encode helpers shared by the readers, writers and the tf.data pipeline.

Everything decodes with TensorFlow's `DecodeImage` op (libjpeg-turbo for JPEG; PNG, BMP, GIF and
WebP too), so a file reads the same in a conversion loop and in the training pipeline.
On a machine without TensorFlow (the lent GPU hosts run Keras on JAX), `decode_images` falls
back to Pillow's libjpeg, so `.rec` and `.bin` files still read there.
"""

import numpy as np

from tfmargin.data.image_header import too_large
from tfmargin.errors import TfmarginError, op_message

try:
    import tensorflow as tf
except ImportError:  # JAX-only machine
    tf = None

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


class CorruptImageError(TfmarginError, ValueError):
    """An image that does not decode; the message names the file or record."""


def decode_tensor(data, channels=3):
    """tf op: encoded bytes -> uint8 (H, W, 3); first frame of animations."""
    return tf.io.decode_image(data, channels=channels, expand_animations=False)


def resize_tensor(image, size):
    """tf op: bilinear resize to (size, size) unless the image already has that size; uint8."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    shape = tf.shape(image)

    def resize():
        return tf.cast(tf.clip_by_value(tf.round(tf.image.resize(image, size)), 0, 255), tf.uint8)

    same = tf.logical_and(tf.equal(shape[0], size[0]), tf.equal(shape[1], size[1]))
    out = tf.cond(same, lambda: image, resize)
    out.set_shape([size[0], size[1], image.shape[-1]])
    return out


def _check_size(data, where):
    """A header that declares more pixels than MAX_PIXELS is refused before any decoder
    allocates them (a small hostile file must not cost gigabytes)."""
    complaint = too_large(data)
    if complaint:
        raise CorruptImageError(f"{where}: {complaint}")


def decode_image(data, where="image"):
    """Encoded bytes -> uint8 (H, W, 3) numpy RGB; CorruptImageError naming `where` otherwise."""
    if not data:
        raise CorruptImageError(f"{where}: empty image")
    _check_size(data, where)
    try:
        return decode_tensor(tf.constant(data)).numpy()
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as e:
        raise CorruptImageError(f"{where}: cannot decode image ({op_message(e)})") from None


def decode_images(encoded, size=112, where="images"):
    """List of encoded images -> uint8 (N, size, size, 3), decoded in parallel with tf.data.

    On a corrupt item the error names `where` and the item's index.
    """
    n = len(encoded)
    if n == 0:
        return np.zeros((0, size, size, 3), np.uint8)
    for i, data in enumerate(encoded):
        _check_size(data, f"{where}: image {i}")
    if tf is None:
        return _decode_images_pillow(encoded, size, where)
    ds = tf.data.Dataset.from_tensor_slices(tf.constant(list(encoded), tf.string))
    ds = ds.map(lambda b: resize_tensor(decode_tensor(b), size),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(256)
    try:
        return np.concatenate([b.numpy() for b in ds], axis=0)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError):
        pass
    for i, data in enumerate(encoded):  # find the culprit for the message
        decode_image(data, f"{where}: image {i}")
    raise CorruptImageError(f"{where}: cannot decode images")  # pragma: no cover


def _decode_images_pillow(encoded, size, where):
    import io

    from PIL import Image

    out = np.empty((len(encoded), size, size, 3), np.uint8)
    for i, data in enumerate(encoded):
        try:
            image = Image.open(io.BytesIO(bytes(data))).convert("RGB")
        except Exception as e:  # Pillow raises several types for bad data
            raise CorruptImageError(f"{where}: image {i}: cannot decode image ({e})") from None
        if image.size != (size, size):
            image = image.resize((size, size), Image.BILINEAR)
        out[i] = np.asarray(image)
    return out


def encode_jpeg(image, quality=95):
    """uint8 (H, W, 3) RGB (or float in [0, 255]) -> JPEG bytes."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return tf.io.encode_jpeg(image, quality=quality).numpy()


def encode_png(image):
    """uint8 (H, W, 3) -> PNG bytes (lossless)."""
    return tf.io.encode_png(np.asarray(image, np.uint8)).numpy()


def is_jpeg(data):
    """True when the bytes start with a JPEG SOI marker."""
    return data[:3] == b"\xff\xd8\xff"


def decodable(data):
    """'' when `data` decodes, else the decoder's one-line complaint (never raises)."""
    if not data:
        return "empty image"
    complaint = too_large(data)
    if complaint:
        return complaint
    try:
        decode_tensor(tf.constant(data))
        return ""
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as e:
        return op_message(e)


def check_images(encoded, pool=None):
    """['' or complaint] per encoded image, decoded on a thread pool (the op releases the GIL)."""
    if pool is None:
        return [decodable(d) for d in encoded]
    return list(pool.map(decodable, encoded))
