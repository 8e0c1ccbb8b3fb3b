"""enroll / identify / verify: photo -> faces -> aligned crops -> embeddings -> decisions."""

import os

import numpy as np

from tfmargin.errors import TfmarginError
from tfmargin.faceid.gallery import Gallery


class PhotoError(TfmarginError, ValueError):
    """A photo that cannot be read, or holds no face."""


def read_photo(path):
    """uint8 (H, W, 3) RGB of an image file (Pillow)."""
    from PIL import Image, UnidentifiedImageError

    from PIL import ImageOps

    try:
        with Image.open(path) as image:  # upright as the camera meant it (EXIF orientation)
            return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    except (OSError, UnidentifiedImageError) as e:
        raise PhotoError(f"{path}: cannot read the photo ({e})") from None


def faces_in(model, detector, photo):
    """[(Detection, unit embedding)] of every face in `photo`, largest first."""
    from tfmargin.data.align import align_face  # numpy only

    image = read_photo(photo)
    out = []
    for det in detector(image, photo):
        face = align_face(image, det.landmarks, model.size[0])
        out.append((det, model.embed(face)))
    out.sort(key=lambda item: -item[0].box[2] * item[0].box[3])
    return out


def _largest(model, detector, photo):
    faces = faces_in(model, detector, photo)
    if not faces:
        raise PhotoError(f"{photo}: no face found")
    return faces[0]


def enroll(model, detector, gallery_path, name, photos):
    """Add the largest face of each photo under `name`; the gallery is saved atomically."""
    embeddings = [_largest(model, detector, photo)[1] for photo in photos]  # before the lock
    with Gallery.locked(gallery_path):  # read, add, save: no other enroll in between
        gallery = Gallery.open(gallery_path, model, create=True)
        for embedding in embeddings:
            gallery.add(name, embedding)
        gallery.save()
    return gallery


def identify(model, detector, gallery, photo, far=1e-3, threshold=None):
    """One dict per face: box, best name, cosine, and whether it reaches the threshold."""
    threshold = model.threshold(far) if threshold is None else float(threshold)
    out = []
    for det, embedding in faces_in(model, detector, photo):
        name, cos = gallery.best(embedding)
        out.append({"photo": os.fspath(photo), "box": [round(v, 1) for v in det.box],
                     "name": name, "cosine": None if cos is None else round(cos, 6),
                     "match": cos is not None and cos >= threshold,
                     "threshold": round(threshold, 6)})
    return out


def verify(model, detector, photo_a, photo_b, far=1e-3, threshold=None):
    """Cosine of the largest face of each photo, and the decision at the threshold."""
    threshold = model.threshold(far) if threshold is None else float(threshold)
    cos = float(_largest(model, detector, photo_a)[1] @ _largest(model, detector, photo_b)[1])
    return {"a": os.fspath(photo_a), "b": os.fspath(photo_b), "cosine": round(cos, 6),
            "match": cos >= threshold, "threshold": round(threshold, 6)}
