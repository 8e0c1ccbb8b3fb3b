"""Face ID with an exported .tflite, as a phone app does it (tfmargin.faceid: LiteRT, numpy and
Pillow; MTCNN only when --detector=mtcnn):

    python -m tfmargin.cli.faceid enroll --model=student_int8.tflite --gallery=people.npz \
        --name=ann ann1.jpg ann2.jpg
    python -m tfmargin.cli.faceid identify --model=student_int8.tflite --gallery=people.npz \
        group.jpg
    python -m tfmargin.cli.faceid verify --model=student_int8.tflite a.jpg b.jpg

identify prints one JSON line per face (a photo without one: {"photo", "faces": 0}): photo, box,
best name, cosine, and whether it reaches
the file's cosine threshold at --far (measured on held-out pairs when the file was exported;
--threshold overrides it). verify prints one JSON line. The preprocessing (normalisation,
integer quantisation, flip-sum) is read from the file's metadata. A gallery made with another
model is refused; enrolling rewrites the gallery atomically.
Exit codes: 0 done, 1 failed while working, 2 bad usage (one `error:` line on stderr).
"""

import json

from absl import app, flags

from tfmargin.cli import common

COMMANDS = ("enroll", "identify", "verify")
FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("model", None, "Exported .tflite (tfmargin.cli.export).")
    flags.DEFINE_string("gallery", None, "enroll / identify: the gallery .npz.")
    flags.DEFINE_string("name", None, "enroll: the person's name.")
    flags.DEFINE_enum("detector", "mtcnn", ["mtcnn", "landmarks"], "mtcnn (imports "
                      "TensorFlow), or landmarks: PHOTO.landmarks.json beside each photo.")
    flags.DEFINE_float("far", 1e-3, "Operating point whose cosine threshold the file holds.")
    flags.DEFINE_float("threshold", None, "A cosine threshold instead of the file's.")
    flags.DEFINE_integer("threads", 2, "LiteRT threads.")


def _check(command, photos):
    if command not in COMMANDS:
        raise app.UsageError(f"which command? one of {', '.join(COMMANDS)}")
    if not FLAGS.model:
        raise app.UsageError("--model is required")
    if command != "verify" and not FLAGS.gallery:
        raise app.UsageError(f"--gallery is required for {command}")
    if command == "enroll" and not FLAGS.name:
        raise app.UsageError("--name is required for enroll")
    if command == "verify" and len(photos) != 2:
        raise app.UsageError(f"verify takes two photos, got {len(photos)}")
    if not photos:
        raise app.UsageError(f"{command}: give at least one photo")
    for path in [FLAGS.model, *photos]:
        with open(path, "rb"):  # OSError names the file: exit 1 before any model loads
            pass


@common.command
def main(argv):
    command, photos = (argv[1] if len(argv) > 1 else None), argv[2:]
    _check(command, photos)
    from tfmargin.faceid import FaceModel, Gallery, LandmarksFile, MTCNNDetector, enroll
    from tfmargin.faceid import identify, verify

    model = FaceModel(FLAGS.model, FLAGS.threads)
    detector = LandmarksFile() if FLAGS.detector == "landmarks" else MTCNNDetector()
    if command == "enroll":
        gallery = enroll(model, detector, FLAGS.gallery, FLAGS.name, photos)
        print(json.dumps({"gallery": gallery.path, "enrolled": FLAGS.name,
                          "photos": len(photos), "size": len(gallery.names)}))
    elif command == "identify":
        gallery = Gallery.open(FLAGS.gallery, model)
        for photo in photos:
            faces = identify(model, detector, gallery, photo, FLAGS.far, FLAGS.threshold)
            for face in faces:
                print(json.dumps(face))
            if not faces:  # a line for every photo: the app must know none was found
                print(json.dumps({"photo": photo, "faces": 0}))
    else:
        print(json.dumps(verify(model, detector, *photos, FLAGS.far, FLAGS.threshold)))
    return 0


if __name__ == "__main__":
    define_flags()
    common.run(main)
