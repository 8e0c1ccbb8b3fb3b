"""tf.data pipelines: training batches from a .rec, TFRecord shards or identity folders, and
verification pairs from an insightface .bin.

Training data flow (every stage parallel, nothing waits on Python per image):

  .rec / folders:  per-epoch permutation of positions (stateless, seeded) -> chunks of one
                   batch -> Python chunk reader (os.pread per record, headers parsed with
                   numpy; the chunk crosses into TensorFlow as one buffer, cut by Substr)
  TFRecord:        per pass: shuffled shard list -> interleaved TFRecordDataset -> shuffle
                   buffer -> chunks of one batch -> vectorised parse_example
  then:            parallel per-chunk decode (+ optional flip; a corrupt image is dropped
                   inside its chunk, so no other error can be swallowed) -> rebatch (slices
                   whole-batch chunks, no copy) -> [-1, 1] float32 in one pass (Dequantize)
                   -> prefetch

Where the CPU goes (bench row data_pipeline, bench/results/data_pipeline.json, 2 shared
cores): about 165 us per image against 174 us for a Python tf.io.decode_jpeg loop (ratio 1.05;
it was 0.67-0.77 with per-image hand-offs to the inter-op pool). JPEG decoding is ~55-60% of it:
each image is decoded inline by the single-threaded executor. The float conversion of a batch
is the next item, 13-28 us per image (a 256-image float32 batch is 38.5 MB, written once, and
the baseline produces no float at all), then the chunk copy (~8 us), the nested per-image
dataset (~10 us) and the record reader (~4.5 us).

Corrupt images are counted, and named, in a PipelineStats that the caller holds (pass
`stats=`; `dataset.stats` is the same object but is lost by any transformation of the dataset);
the Keras callback from `skipped_images_report` prints them at the end of each epoch. With
strict=True the first corrupt image stops iteration with an error naming its record.

stats.py (PipelineStats and the report), chunks.py (the sources' chunk streams), decode.py
(error-isolating decode), batches.py (train_dataset, verification_dataset), errors.py (the
pipeline's edge: TensorFlow's errors as one line naming the file and record).
"""

from tfmargin.data.pipeline.batches import train_dataset, verification_dataset
from tfmargin.data.pipeline.errors import DataPipelineError, named_errors
from tfmargin.data.pipeline.decode import normalize
from tfmargin.data.pipeline.stats import PipelineStats, skipped_images_report

__all__ = ["DataPipelineError", "PipelineStats", "named_errors", "normalize",
           "skipped_images_report", "train_dataset", "verification_dataset"]
