"""TFLite metadata: the contract of an exported face embedder, inside the `.tflite` itself.

The format is TFLite's standard one (tflite-support's `metadata_schema.fbs`, file identifier
"M001"), which Android Studio's ML model binding and LiteRT's metadata extractors read:
a ModelMetadata flatbuffer stored in a buffer of the model that the model's `metadata` list
names "TFLITE_METADATA", and associated files packed as a zip archive appended to the model
(the flatbuffer ignores trailing bytes; zip readers find the archive from its end).
tflite-support itself pins protobuf < 4 and cannot install beside TensorFlow 2.21, so the few
tables needed are written here with the `flatbuffers` builder, slot by slot as the schema
numbers them (the table comments below give each field's slot).

What goes in: name, version, description (the contract in words), the input tensor (image
content, RGB, 112x112, normalisation mean/std 127.5, value range; for integer I/O the tensor's
own scale and zero point stay in the model's quantisation parameters, as the schema intends),
the output tensor (embedding, its size, normalised or not), and `model_card.json` as an
associated file whose "contract" field holds what the schema has no slot for: the alignment
template, flip-sum, and the recommended cosine thresholds at FAR 1e-3 / 1e-4.
"""

import io
import zipfile

import flatbuffers
import numpy as np

METADATA_NAME = "TFLITE_METADATA"
FILE_IDENTIFIER = b"M001"
PARSER_VERSION = "1.0.0"  # no field newer than the schema's 1.0.0 is written
CARD_FILE = "model_card.json"
# enum values of metadata_schema.fbs
DESCRIPTIONS = 1                                   # AssociatedFileType
RGB = 1                                            # ColorSpaceType
FEATURE, IMAGE = 1, 2                              # ContentProperties union
NORMALIZATION = 1                                  # ProcessUnitOptions union


def _strings(b, values):
    offsets = [b.CreateString(v) for v in values]
    b.StartVector(4, len(offsets), 4)
    for o in reversed(offsets):
        b.PrependUOffsetTRelative(o)
    return b.EndVector()


def _tables(b, offsets):
    b.StartVector(4, len(offsets), 4)
    for o in reversed(offsets):
        b.PrependUOffsetTRelative(o)
    return b.EndVector()


def _floats(b, values):
    return b.CreateNumpyVector(np.asarray(values, np.float32))


def _associated_file(b, name, description):
    # table AssociatedFile { name:string (0); description:string (1); type (2); locale (3) }
    n, d = b.CreateString(name), b.CreateString(description)
    b.StartObject(4)
    b.PrependUOffsetTRelativeSlot(0, n, 0)
    b.PrependUOffsetTRelativeSlot(1, d, 0)
    b.PrependInt8Slot(2, DESCRIPTIONS, 0)
    return b.EndObject()


def _image_content(b, size):
    # table ImageSize { width:uint (0); height:uint (1) }
    b.StartObject(2)
    b.PrependUint32Slot(0, size, 0)
    b.PrependUint32Slot(1, size, 0)
    image_size = b.EndObject()
    # table ImageProperties { color_space (0); default_size:ImageSize (1) }
    b.StartObject(2)
    b.PrependInt8Slot(0, RGB, 0)
    b.PrependUOffsetTRelativeSlot(1, image_size, 0)
    props = b.EndObject()
    return _content(b, IMAGE, props)


def _feature_content(b):
    b.StartObject(0)  # table FeatureProperties {}
    return _content(b, FEATURE, b.EndObject())


def _content(b, kind, props):
    # table Content { content_properties (union: type slot 0, value slot 1); range (2) }
    b.StartObject(3)
    b.PrependUint8Slot(0, kind, 0)
    b.PrependUOffsetTRelativeSlot(1, props, 0)
    return b.EndObject()


def _float_pair(b, first, second):
    """A table of two [float] fields in slots 0 and 1: NormalizationOptions { mean; std } and
    Stats { max; min } are both laid out so."""
    v0, v1 = _floats(b, [first]), _floats(b, [second])
    b.StartObject(2)
    b.PrependUOffsetTRelativeSlot(0, v0, 0)
    b.PrependUOffsetTRelativeSlot(1, v1, 0)
    return b.EndObject()


def _normalization(b, mean, std):
    options = _float_pair(b, mean, std)  # table NormalizationOptions { mean (0); std (1) }
    # table ProcessUnit { options (union: type slot 0, value slot 1) }
    b.StartObject(2)
    b.PrependUint8Slot(0, NORMALIZATION, 0)
    b.PrependUOffsetTRelativeSlot(1, options, 0)
    return b.EndObject()


def _stats(b, low, high):
    return _float_pair(b, high, low)  # table Stats { max:[float] (0); min:[float] (1) }


def _tensor(b, name, description, dims, content, units=(), stats=None):
    # table TensorMetadata { name (0); description (1); dimension_names (2); content (3);
    #                        process_units (4); stats (5); associated_files (6) }
    n, d, dn = b.CreateString(name), b.CreateString(description), _strings(b, dims)
    pu = _tables(b, list(units)) if units else None
    b.StartObject(7)
    b.PrependUOffsetTRelativeSlot(0, n, 0)
    b.PrependUOffsetTRelativeSlot(1, d, 0)
    b.PrependUOffsetTRelativeSlot(2, dn, 0)
    b.PrependUOffsetTRelativeSlot(3, content, 0)
    if pu is not None:
        b.PrependUOffsetTRelativeSlot(4, pu, 0)
    if stats is not None:
        b.PrependUOffsetTRelativeSlot(5, stats, 0)
    return b.EndObject()


def metadata_flatbuffer(contract, name, description, version, author="tfmargin"):
    """The ModelMetadata flatbuffer (bytes, identifier M001) of a face embedder whose
    `contract` is export.contract.contract_of()'s dict."""
    b = flatbuffers.Builder(1024)
    size = contract["input"]["size"][0]
    image = _tensor(
        b, "image", contract["input"]["description"], ["batch", "height", "width", "channels"],
        _image_content(b, size),
        [_normalization(b, contract["input"]["mean"], contract["input"]["std"])],
        _stats(b, -1.0, 1.0))
    embedding = _tensor(b, "embedding", contract["output"]["description"],
                        ["batch", "embedding"], _feature_content(b))
    inputs, outputs = _tables(b, [image]), _tables(b, [embedding])
    sg_name = b.CreateString(name)
    # table SubGraphMetadata { name (0); description (1); input_tensor_metadata (2);
    #                          output_tensor_metadata (3); associated_files (4); ... }
    b.StartObject(5)
    b.PrependUOffsetTRelativeSlot(0, sg_name, 0)
    b.PrependUOffsetTRelativeSlot(2, inputs, 0)
    b.PrependUOffsetTRelativeSlot(3, outputs, 0)
    subgraph = b.EndObject()
    subgraphs = _tables(b, [subgraph])
    card = _tables(b, [_associated_file(b, CARD_FILE, "The model card: training, teacher, "
                                        "verification, and the contract (alignment template, "
                                        "flip-sum, cosine thresholds)")])
    fields = [b.CreateString(v) for v in (name, description, version, author, PARSER_VERSION)]
    # table ModelMetadata { name (0); description (1); version (2); subgraph_metadata (3);
    #                       author (4); license (5); associated_files (6);
    #                       min_parser_version (7) }
    b.StartObject(8)
    b.PrependUOffsetTRelativeSlot(0, fields[0], 0)
    b.PrependUOffsetTRelativeSlot(1, fields[1], 0)
    b.PrependUOffsetTRelativeSlot(2, fields[2], 0)
    b.PrependUOffsetTRelativeSlot(3, subgraphs, 0)
    b.PrependUOffsetTRelativeSlot(4, fields[3], 0)
    b.PrependUOffsetTRelativeSlot(6, card, 0)
    b.PrependUOffsetTRelativeSlot(7, fields[4], 0)
    b.Finish(b.EndObject(), file_identifier=FILE_IDENTIFIER)
    return bytes(b.Output())


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:  # pragma: no cover - older litert wheels
        from tensorflow.lite.python import schema_py_generated as schema
    return schema


def _aligned_bytes(builder, data, alignment=16):
    """A [ubyte] vector whose data starts on `alignment`, as TFLite's converter writes
    weights (schema: `data:[ubyte] (force_align: 16)`); the generated Pack aligns to 1."""
    payload = np.asarray(data, np.uint8).tobytes()
    builder.StartVector(1, len(payload), alignment)
    builder.head -= len(payload)
    builder.Bytes[builder.head:builder.head + len(payload)] = payload
    builder.vectorNumElems = len(payload)
    return builder.EndVector()


def _buffer_type(schema):
    class AlignedBuffer(schema.BufferT):
        def Pack(self, builder):
            data = (_aligned_bytes(builder, self.data)
                    if self.data is not None and len(self.data) else None)
            schema.BufferStart(builder)
            if data is not None:
                schema.BufferAddData(builder, data)
            schema.BufferAddOffset(builder, self.offset)
            schema.BufferAddSize(builder, self.size)
            return schema.BufferEnd(builder)

    return AlignedBuffer


def attach_metadata(model_bytes, metadata, files):
    """`model_bytes` with `metadata` (a ModelMetadata flatbuffer) in a buffer named
    TFLITE_METADATA (replacing an earlier one) and `files` ({name: bytes}) zipped on the end."""
    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)  # ignores a zip tail

    def name(m):
        return m.name.decode() if isinstance(m.name, bytes) else m.name

    earlier = [m.buffer for m in (model.metadata or []) if name(m) == METADATA_NAME]
    model.metadata = [m for m in (model.metadata or []) if name(m) != METADATA_NAME]
    aligned = _buffer_type(schema)
    buffers = []
    for old in model.buffers:
        buffer = aligned()
        buffer.data, buffer.offset, buffer.size = old.data, old.offset, old.size
        buffers.append(buffer)
    buffer = aligned()
    buffer.data = np.frombuffer(metadata, np.uint8)
    if earlier:  # written again: the old metadata's buffer takes the new bytes (no tensor
        index = earlier[0]  # refers to it, and dropping it would renumber every later buffer)
        buffers[index] = buffer
    else:
        index = len(buffers)
        buffers.append(buffer)
    model.buffers = buffers
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = index
    model.metadata.append(entry)
    b = flatbuffers.Builder(len(model_bytes) + len(metadata) + 1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    out = io.BytesIO(bytes(b.Output()))
    out.seek(0, io.SEEK_END)
    with zipfile.ZipFile(out, "a", zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def associated_file(path, name=CARD_FILE):
    """An associated file of a `.tflite` (zip members appended to the model), or None."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.read(name)
    except (zipfile.BadZipFile, KeyError):
        return None
