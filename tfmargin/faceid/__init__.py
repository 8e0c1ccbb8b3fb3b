"""A reference face-ID pipeline on LiteRT, numpy and Pillow alone: what a phone app does with an
exported tfmargin student, written once in Python so that it reads as a port guide.

    from tfmargin.faceid import FaceModel, Gallery, LandmarksFile, enroll, identify, verify
    model = FaceModel("student_int8.tflite")           # reads the file's own contract
    detector = LandmarksFile()                          # or MTCNNDetector() (imports TensorFlow)
    gallery = enroll(model, detector, "people.npz", "ann", ["ann1.jpg"])
    for face in identify(model, detector, gallery, "group.jpg"): print(face)
    verify(model, detector, "a.jpg", "b.jpg")          # {"cosine", "match", "threshold"}

The steps, one module each: `detect` (faces and 5 landmarks: MTCNN, or landmarks another
detector wrote beside the photo), `align` (the 5-point similarity transform onto the ArcFace
template, numpy), `model` (preprocessing and thresholds read from the .tflite's metadata;
flip-sum embedding; L2 normalisation), `gallery` (enrolled embeddings tied to the model file
that made them), `pipeline` (enroll / identify / verify). At run time nothing here imports
TensorFlow or Keras except MTCNNDetector, whose detector network is a Keras model.
"""

from tfmargin.faceid.detect import Detection, LandmarksFile, MTCNNDetector, landmarks_path
from tfmargin.faceid.gallery import Gallery, GalleryError
from tfmargin.faceid.model import ContractError, FaceModel
from tfmargin.faceid.pipeline import enroll, faces_in, identify, verify

__all__ = ["ContractError", "Detection", "FaceModel", "Gallery", "GalleryError",
           "LandmarksFile", "MTCNNDetector", "enroll", "faces_in", "identify",
           "landmarks_path", "verify"]
