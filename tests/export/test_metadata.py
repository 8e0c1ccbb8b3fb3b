"""Every exported .tflite carries its contract as standard TFLite metadata. Read back here with
a reader written from tflite-support's metadata_schema.fbs and TFLite's schema.fbs on the bare
`flatbuffers` runtime and `zipfile` (no tfmargin import), as an Android metadata extractor
would; the file still runs and gives the same embeddings."""

import json
import zipfile

import flatbuffers
import numpy as np
import pytest
from flatbuffers.table import Table

TFLITE_FILES = ("tflite_fp32", "tflite_fp16", "tflite_dynamic", "tflite_int8", "tflite_int8_io",
                "qat_int8")


class T:
    """A flatbuffers table read by field slot (the schema's field order)."""

    def __init__(self, buf, pos):
        self.t = Table(buf, pos)

    @classmethod
    def root(cls, buf, identifier=None):
        if identifier is not None:
            assert bytes(buf[4:8]) == identifier, bytes(buf[4:8])
        return cls(buf, flatbuffers.encode.Get(flatbuffers.packer.uoffset, buf, 0))

    def _o(self, slot):
        return self.t.Offset(4 + 2 * slot)

    def string(self, slot):
        o = self._o(slot)
        return self.t.String(o + self.t.Pos).decode() if o else None

    def scalar(self, slot, flags, default=0):
        o = self._o(slot)
        return self.t.Get(flags, o + self.t.Pos) if o else default

    def table(self, slot):
        o = self._o(slot)
        return T(self.t.Bytes, self.t.Indirect(o + self.t.Pos)) if o else None

    def tables(self, slot):
        o = self._o(slot)
        if not o:
            return []
        start, n = self.t.Vector(o), self.t.VectorLen(o)
        return [T(self.t.Bytes, self.t.Indirect(start + 4 * i)) for i in range(n)]

    def strings(self, slot):
        o = self._o(slot)
        if not o:
            return []
        start, n = self.t.Vector(o), self.t.VectorLen(o)
        return [self.t.String(start + 4 * i).decode() for i in range(n)]

    def vector(self, slot, dtype):
        o = self._o(slot)
        if not o:
            return None
        start, n = self.t.Vector(o), self.t.VectorLen(o)
        return np.frombuffer(bytes(self.t.Bytes[start:start + n * np.dtype(dtype).itemsize]),
                             dtype)


U8, I8, U32 = (flatbuffers.number_types.Uint8Flags, flatbuffers.number_types.Int8Flags,
               flatbuffers.number_types.Uint32Flags)


def read_metadata(path):
    """(ModelMetadata table, the buffer's alignment, the zip's member names)."""
    buf = bytearray(open(path, "rb").read())
    model = T.root(buf, b"TFL3")
    # table Model { version (0); operator_codes (1); subgraphs (2); description (3);
    #               buffers (4); metadata_buffer (5); metadata (6); signature_defs (7) }
    entries = {m.string(0): m.scalar(1, U32) for m in model.tables(6)}
    buffer = model.tables(4)[entries["TFLITE_METADATA"]]
    o = buffer._o(0)  # table Buffer { data:[ubyte] (0); offset (1); size (2) }
    start, n = buffer.t.Vector(o), buffer.t.VectorLen(o)
    meta = bytearray(buf[start:start + n])
    names = zipfile.ZipFile(path).namelist()
    return T.root(meta, b"M001"), names


@pytest.mark.parametrize("fmt", TFLITE_FILES)
def test_the_contract_reads_back_without_tfmargin(exported, fmt):
    folder, paths = exported
    path = paths[fmt]
    meta, names = read_metadata(path)
    assert meta.string(0).startswith("tfmargin ") and "embedder" in meta.string(0)
    description = meta.string(1)
    assert "(p - 127.5) / 127.5" in description and "5-point ArcFace" in description
    assert meta.string(4) == "tfmargin" and meta.string(7) == "1.0.0"
    (subgraph,) = meta.tables(3)
    (image,), (embedding,) = subgraph.tables(2), subgraph.tables(3)
    assert image.string(0) == "image"
    assert image.strings(2) == ["batch", "height", "width", "channels"]
    content = image.table(3)
    assert content.scalar(0, U8) == 2  # ContentProperties.ImageProperties
    props = content.table(1)
    assert props.scalar(0, I8) == 1  # ColorSpaceType.RGB
    size = props.table(1)
    assert (size.scalar(0, U32), size.scalar(1, U32)) == (112, 112)
    (unit,) = image.tables(4)
    assert unit.scalar(0, U8) == 1  # ProcessUnitOptions.NormalizationOptions
    norm = unit.table(1)
    assert norm.vector(0, "<f4").tolist() == [127.5] and norm.vector(1, "<f4").tolist() == [127.5]
    stats = image.table(5)
    assert stats.vector(0, "<f4").tolist() == [1.0] and stats.vector(1, "<f4").tolist() == [-1.0]
    assert embedding.string(0) == "embedding" and embedding.table(3).scalar(0, U8) == 1
    (card_file,) = meta.tables(6)
    assert card_file.string(0) == "model_card.json" and card_file.scalar(2, I8) == 1
    assert names == ["model_card.json"]
    card = json.loads(zipfile.ZipFile(path).read("model_card.json"))
    contract = card["contract"]
    from ai_edge_litert.interpreter import Interpreter  # the runtime's own view of the file

    interpreter = Interpreter(model_path=path)
    x, y = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    assert contract["input"]["dtype"] == x["dtype"].__name__
    assert contract["output"]["dim"] == int(y["shape"][-1]) == 512
    if x["quantization"][0]:
        assert contract["input"]["quantization"] == {"scale": pytest.approx(x["quantization"][0]),
                                                     "zero_point": x["quantization"][1]}
        assert contract["output"]["normalised"] is False  # integer I/O: raw, quantised
    else:
        assert contract["input"]["quantization"] is None
        # normalised when the graph ends in L2 normalisation (the runtime's own op list)
        ops = {op["op_name"] for op in interpreter._get_ops_details()}
        assert contract["output"]["normalised"] is ("L2_NORMALIZATION" in ops)
    assert contract["flip_sum"] is True and len(contract["alignment"]["template"]) == 5
    assert card["teacher"] == "made-up centers (test)"  # the export's card travels along
    assert contract["thresholds"]["set"].endswith("identification.npz")


def test_metadata_changes_nothing_the_runtime_computes(exported, held_out, tmp_path):
    """The same conversion written without metadata gives the same outputs, bit for bit."""
    from ai_edge_litert.interpreter import Interpreter

    from tfmargin.export.metadata import associated_file

    folder, paths = exported
    with_meta = open(paths["tflite_fp32"], "rb").read()
    stripped = with_meta[:with_meta.index(b"PK\x03\x04")]  # the model before the zip
    (tmp_path / "plain.tflite").write_bytes(stripped)
    assert associated_file(paths["tflite_fp32"]) is not None
    images = (held_out[0][:3].astype(np.float32) - 127.5) / 127.5
    outs = []
    for path in (paths["tflite_fp32"], str(tmp_path / "plain.tflite")):
        interpreter = Interpreter(model_path=path)
        interpreter.resize_tensor_input(0, images.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], images)
        interpreter.invoke()
        outs.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))
    np.testing.assert_array_equal(outs[0], outs[1])


def test_thresholds_against_a_float64_reference(exported, train_arrays, tmp_path, monkeypatch):
    """cosine_thresholds on a labelled set: at the reported cosine, the FAR is within the one
    asked and the TAR is what every genuine pair gives; one impostor score lower would break
    the FAR (the operating point is the best allowed)."""
    from tfmargin.evaluate import embed
    from tfmargin.export import contract

    monkeypatch.setattr(contract, "MIN_FALSE_ACCEPTS", 1)
    images, labels, _, _ = train_arrays
    u8 = np.clip(np.round(images * 127.5 + 127.5), 0, 255).astype(np.uint8)
    firsts = np.unique(labels, return_index=True)[1]
    rest = np.setdiff1d(np.arange(len(labels)), firsts)
    np.savez(tmp_path / "set.npz", probe=u8[firsts], probe_labels=labels[firsts],
             gallery=u8[rest], gallery_labels=labels[rest])
    path = exported[1]["tflite_int8"]
    got = contract.cosine_thresholds(path, tmp_path / "set.npz", fars=(1e-2, 1e-3))
    e = embed(path, np.concatenate([u8[firsts], u8[rest]])).astype(np.float64)
    lab = np.concatenate([labels[firsts], labels[rest]])
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    i, j = np.triu_indices(len(e), 1)
    cos, genuine = np.sum(e[i] * e[j], axis=1), lab[i] == lab[j]
    impostor = np.sort(cos[~genuine])[::-1]
    for far, key in ((1e-2, "1e-2"), (1e-3, "1e-3")):
        t = got[key]["cosine"]
        eps = 1e-9  # the reference sums products in another order: ulps apart at the cut
        assert np.mean(cos[~genuine] >= t + eps) <= far
        assert np.mean(cos[genuine] >= t + eps) <= got[key]["tar"] <= np.mean(
            cos[genuine] >= t - eps)
        below = impostor[impostor < t - eps]
        if len(below):  # accepting the next impostor score would exceed the FAR
            assert np.mean(cos[~genuine] >= below[0]) > far


def test_the_rewrite_computes_what_the_converter_wrote(exported, backbone, held_out, tmp_path):
    """The same conversion written without metadata (export_tflite(metadata=False), the
    converter's flatbuffer untouched) and the exported file with metadata (the flatbuffer
    re-packed with aligned buffers, the zip appended) give the same outputs, bit for bit;
    and writing the metadata again replaces it instead of adding a buffer."""
    from ai_edge_litert.interpreter import Interpreter

    from tfmargin.export import export_tflite
    from tfmargin.export.contract import add_metadata

    folder, paths = exported
    plain = export_tflite(backbone, str(tmp_path / "plain.tflite"), "fp32", metadata=False)
    assert not zipfile.is_zipfile(plain)
    images = (held_out[0][:3].astype(np.float32) - 127.5) / 127.5

    def outputs(path):
        it = Interpreter(model_path=path)
        it.resize_tensor_input(0, images.shape)
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], images)
        it.invoke()
        return it.get_tensor(it.get_output_details()[0]["index"])

    np.testing.assert_array_equal(outputs(paths["tflite_fp32"]), outputs(plain))
    again = str(tmp_path / "again.tflite")
    with open(paths["tflite_fp32"], "rb") as f, open(again, "wb") as g:
        g.write(f.read())
    buffers = len(_buffers(again))
    add_metadata(again, card={"note": "written twice"})
    assert len(_buffers(again)) == buffers
    assert json.loads(zipfile.ZipFile(again).read("model_card.json"))["note"] == "written twice"
    np.testing.assert_array_equal(outputs(again), outputs(plain))


def _buffers(path):
    buf = bytearray(open(path, "rb").read())
    return T.root(buf, b"TFL3").tables(4)
