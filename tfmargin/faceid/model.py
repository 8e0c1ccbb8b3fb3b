"""The exported .tflite as an app uses it: contract from its metadata, then embed."""

import hashlib
import json
import os
import zipfile

import numpy as np

from tfmargin.errors import TfmarginError
from tfmargin.pixels import quantize_input

CARD_FILE = "model_card.json"  # the associated file tfmargin packs into every .tflite


class ContractError(TfmarginError, ValueError):
    """A .tflite without the metadata this pipeline needs, or a threshold it does not hold."""


def read_contract(path):
    """The contract of a tfmargin .tflite: model_card.json, appended to the model as a zip
    member (TFLite metadata's associated files), field "contract"."""
    try:
        with zipfile.ZipFile(path) as archive:
            card = json.loads(archive.read(CARD_FILE))
    except (zipfile.BadZipFile, KeyError, ValueError) as e:
        raise ContractError(f"{path}: no tfmargin metadata ({CARD_FILE}) in the file ({e}); "
                            "export it with tfmargin.export, which writes it") from None
    if not isinstance(card, dict) or "contract" not in card:
        raise ContractError(f"{path}: {CARD_FILE} has no contract")
    return card["contract"], card


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class FaceModel:
    """Embeds aligned 112x112 RGB uint8 faces as the file's contract says: (x - mean) / std,
    quantised with the input tensor's scale and zero point for integer I/O; the face and its
    mirror image embedded and added when the contract's thresholds assume flip-sum; the sum
    dequantised and L2-normalised."""

    def __init__(self, path, num_threads=2):
        from ai_edge_litert.interpreter import Interpreter

        self.path = os.fspath(path)
        self.contract, self.card = read_contract(self.path)
        self.sha256 = file_sha256(self.path)
        try:
            self.interpreter = Interpreter(model_path=self.path, num_threads=num_threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ContractError(f"{self.path}: LiteRT cannot load it ({str(e)[:200]})") from None
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.size = tuple(self.contract["input"]["size"])

    def threshold(self, far=1e-3):
        """The cosine a pair must reach at `far`, as measured when the file was exported."""
        key = f"{far:.0e}".replace("e-0", "e-")
        entry = (self.contract.get("thresholds") or {}).get(key) or {}
        if entry.get("cosine") is None:
            held = sorted(k for k, v in (self.contract.get("thresholds") or {}).items()
                          if isinstance(v, dict) and v.get("cosine") is not None)
            why = entry.get("why") or (
                f"the file holds thresholds at FAR {', '.join(held)} only" if held else
                "the export measured no thresholds (give --threshold_set to tfmargin.cli.export)")
            raise ContractError(f"{self.path}: no cosine threshold at FAR {key}: {why}")
        return float(entry["cosine"])

    def _run(self, face):
        c = self.contract["input"]
        x = (face.astype(np.float32) - np.float32(c["mean"])) / np.float32(c["std"])
        q = c.get("quantization")
        if q:  # integer input: floor(x / scale + zero_point + 1/2), i.e. p - 128 for 2/255, -1
            x = quantize_input(x, q["scale"], q["zero_point"], self.input["dtype"])
        self.interpreter.set_tensor(self.input["index"], x[None].astype(self.input["dtype"]))
        self.interpreter.invoke()
        y = self.interpreter.get_tensor(self.output["index"])[0].astype(np.float64)
        q = self.contract["output"].get("quantization")
        return (y - q["zero_point"]) * q["scale"] if q else y

    def embed(self, face):
        """Unit float64 embedding of one aligned uint8 (112, 112, 3) RGB face."""
        face = np.asarray(face)
        if face.shape != (*self.size, 3) or face.dtype != np.uint8:
            raise ContractError(f"{self.path}: expects aligned {self.size[0]}x{self.size[1]} "
                                f"RGB uint8 faces, got {face.dtype} {face.shape}")
        e = self._run(face)
        if self.contract.get("flip_sum"):
            e = e + self._run(face[:, ::-1])
        return e / max(np.linalg.norm(e), 1e-12)
