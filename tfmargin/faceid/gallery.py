"""Enrolled people: names and unit embeddings in one .npz, tied to the model file that made
them (an embedding from another model is meaningless against this one's)."""

import contextlib
import os

import numpy as np

from tfmargin.atomic import atomic_path
from tfmargin.errors import TfmarginError


class GalleryError(TfmarginError, ValueError):
    """A gallery that cannot be read, or one made with another model."""


class Gallery:
    def __init__(self, path, model_sha256, names=(), embeddings=None):
        self.path = os.fspath(path)
        self.model_sha256 = model_sha256
        self.names = list(names)
        self.embeddings = (np.zeros((0, 0)) if embeddings is None
                           else np.asarray(embeddings, np.float64))

    @classmethod
    def open(cls, path, model, create=False):
        """The gallery at `path` for `model` (a FaceModel); refused if another model made it."""
        path = os.fspath(path)
        if not os.path.exists(path):
            if create:
                return cls(path, model.sha256)
            raise GalleryError(f"{path}: no such gallery; enroll someone first")
        try:
            with np.load(path, allow_pickle=False) as z:
                sha, names, embeddings = str(z["model_sha256"]), z["names"], z["embeddings"]
        except (OSError, ValueError, KeyError) as e:
            raise GalleryError(f"{path}: not a tfmargin gallery ({e})") from None
        if sha != model.sha256:
            raise GalleryError(f"{path}: made with another model (sha256 {sha[:12]}...), not "
                               f"{model.path} ({model.sha256[:12]}...); embeddings of two "
                               "models cannot be compared")
        if embeddings.ndim != 2 or len(names) != len(embeddings):
            raise GalleryError(f"{path}: {len(names)} names for {len(embeddings)} embeddings")
        return cls(path, sha, names.tolist(), embeddings)

    def add(self, name, embedding):
        e = np.asarray(embedding, np.float64)[None]
        self.embeddings = e if not len(self.names) else np.concatenate([self.embeddings, e])
        self.names.append(str(name))

    def save(self):
        """Written to a temporary file and renamed: a failure leaves the old gallery whole."""
        with atomic_path(self.path, suffix=".npz") as tmp:
            np.savez(tmp, model_sha256=np.array(self.model_sha256),
                     names=np.array(self.names, dtype=str), embeddings=self.embeddings)
        return self.path

    @staticmethod
    @contextlib.contextmanager
    def locked(path):
        """Hold PATH.lock (an exclusive flock) for a read-add-save, so that two enrolls at once
        both land; a no-op where fcntl does not exist (Windows)."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover
            yield
            return
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(os.fspath(path) + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def best(self, embedding):
        """(name, cosine) of the closest enrolled embedding; (None, None) when empty."""
        if not self.names:
            return None, None
        cos = self.embeddings @ np.asarray(embedding, np.float64)
        i = int(np.argmax(cos))
        return self.names[i], float(cos[i])
