"""insightface / MXNet RecordIO (`train.rec`, `train.idx`, `property`), without mxnet.

Byte layout (docs/formats.md, dmlc-core `recordio.h`): every chunk is `uint32 magic 0xced7230a`,
`uint32 lrec` (little-endian), `lrec >> 29` the continuation flag and `lrec & (2**29-1)` the length,
then the payload padded with zeros to 4 bytes. A record whose payload holds the magic value at a
4-byte-aligned position is split there into chunks flagged 1 (start), 2 (middle), 3 (end); the
reader puts the magic bytes back between the parts. The `.idx` beside the `.rec` is text,
`key<TAB>byte_offset` per record, in any order.

A record's payload starts with the 24-byte IRHeader `<IfQQ` (flag, label, id, id2). When flag > 0,
`flag` float32 labels follow and the scalar label is 0; the rest is the encoded image. insightface
datasets carry a header record, key 0, with flag 2 and labels `[first_identity_key, end_key]`:
images are keys 1 .. first_identity_key-1, and keys first_identity_key .. end_key-1 are one record
per identity, with an empty body and labels `[first_image_key, end_image_key)`. Shuffled files have
no header record (key 0 is an image, flag 0).

format.py (the layout), reader.py (RecordIO), writer.py (RecordIOWriter,
write_insightface_dataset).
"""

from tfmargin.data.recordio.format import (IR_SIZE, MAGIC, LabelError, Record, RecordIOError,
                                           encode_chunks, pack_payload, read_idx, read_property,
                                           unpack_payload)
from tfmargin.data.recordio.reader import RecordIO
from tfmargin.data.recordio.writer import RecordIOWriter, write_insightface_dataset

__all__ = ["IR_SIZE", "MAGIC", "LabelError", "Record", "RecordIO", "RecordIOError",
           "RecordIOWriter", "encode_chunks", "pack_payload", "read_idx", "read_property",
           "unpack_payload", "write_insightface_dataset"]
