"""Faces and their 5 landmarks in a photo.

Two detectors: MTCNNDetector (the `mtcnn` package; its networks are Keras models, so it
imports TensorFlow: the one exception to this package's LiteRT-only rule), and LandmarksFile,
which reads the landmarks another detector (the phone's own face detector, or the synthetic
generator, which knows them) wrote beside the photo as PHOTO.landmarks.json:
    [{"box": [x, y, w, h], "score": 1.0, "landmarks": [[x, y] x 5]}, ...]
Landmark order: left eye, right eye, nose tip, left and right mouth corner (image left).
"""

import json
import os
from typing import NamedTuple

import numpy as np

from tfmargin.errors import TfmarginError

class DetectionError(TfmarginError, ValueError):
    """Landmarks that cannot be read; the message names the file."""


class Detection(NamedTuple):
    box: tuple       # (x, y, width, height) in pixels
    score: float
    landmarks: np.ndarray  # (5, 2) float64 (x, y)


def landmarks_path(photo):
    return os.fspath(photo) + ".landmarks.json"


class LandmarksFile:
    """Detections read from PHOTO.landmarks.json (no detector network at all)."""

    def __call__(self, image, photo):
        path = landmarks_path(photo)
        try:
            with open(path) as f:
                entries = json.load(f)
            out = []
            for e in entries:
                points = np.asarray(e["landmarks"], np.float64)
                if points.shape != (5, 2) or not np.all(np.isfinite(points)):
                    raise ValueError(f"landmarks of shape {points.shape}")
                out.append(Detection(tuple(float(v) for v in e["box"]),
                                     float(e.get("score", 1.0)), points))
            return out
        except FileNotFoundError:
            raise DetectionError(f"{path}: missing; --detector=landmarks reads the landmarks "
                                 "beside each photo") from None
        except (ValueError, KeyError, TypeError) as e:
            raise DetectionError(f"{path}: not a list of faces with a box and 5 landmarks "
                                 f"({e})") from None


class MTCNNDetector:
    """MTCNN (the `mtcnn` wheel's weights); faces below `min_score` are dropped."""

    def __init__(self, min_score=0.9, min_face_size=20):
        from tfmargin.data.align import get_detector  # the shared MTCNN; imports TensorFlow

        self.mtcnn = get_detector()
        self.min_score, self.min_face_size = min_score, min_face_size

    def __call__(self, image, photo=None):
        from tfmargin.data.align import MTCNN_KEYPOINTS

        found = self.mtcnn.detect_faces(image, min_face_size=self.min_face_size)
        return [Detection(tuple(float(v) for v in d["box"]), float(d["confidence"]),
                          np.array([d["keypoints"][k] for k in MTCNN_KEYPOINTS], np.float64))
                for d in found if d["confidence"] >= self.min_score]
