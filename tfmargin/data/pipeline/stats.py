"""What a pipeline counts while it runs: images delivered and corrupt images skipped (with
the records they came from), in an object the caller holds."""

import logging
import threading

import numpy as np

log = logging.getLogger("tfmargin.data.pipeline")


class PipelineStats:
    """Counts shared by a pipeline's stages: images delivered in batches, and corrupt images
    skipped. A corrupt image is counted when the stream reaches it, i.e. when the batch it would
    have joined is formed, so per-epoch counts are exact.

    `skipped_records` names the records found corrupt ("path: record KEY"), each once (an
    endless stream meets it again every epoch), in the order they were decoded (the decoder
    runs ahead of the batches, so a name can come before its count), at most `max_names`; each
    is also logged once as a warning on the `tfmargin.data.pipeline` logger.
    Create one and hand it to `train_dataset(stats=...)`: it outlives every transformation of
    the dataset (`dataset.stats` does not)."""

    def __init__(self, give_up_after=None, max_names=10_000):
        self._lock = threading.Lock()
        self.delivered = 0
        self.skipped = 0
        self._mark = (0, 0, 0)
        self._streak = 0
        self.give_up_after = give_up_after
        self.where = ""
        self.namer = None  # position -> record key, for sources whose chunks carry no keys
        self.skipped_records = []
        self._named = set()
        self.max_names = max_names

    def note_skipped(self, keys, positions):
        """Name the records of images dropped as corrupt (keys, or positions for `namer`)."""
        names = []
        for key, position in zip(keys, positions):
            key = key.decode() if isinstance(key, bytes) else str(key)
            if not key and self.namer is not None and position >= 0:
                key = str(self.namer(int(position)))
            names.append(f"{self.where}: record {key or '?'}")
        with self._lock:
            new = [n for n in dict.fromkeys(names) if n not in self._named]
            self._named.update(new)
            room = max(self.max_names - len(self.skipped_records), 0)
            self.skipped_records.extend(new[:room])
        for name in new:
            log.warning("skipped a corrupt image: %s", name)
        return np.int64(len(new))

    def add_skipped(self, n):
        with self._lock:
            self.skipped += int(n)
            self._streak += int(n)
            streak = self._streak
        # An endless stream of undecodable images would otherwise spin forever.
        if self.give_up_after is not None and streak > self.give_up_after:
            raise ValueError(f"{self.where}: {streak} images in a row failed to decode; the "
                             "source looks unreadable (run with strict=True to see the first)")
        return np.int64(n)

    def add_batch(self, delivered, skipped):
        """One batch: `delivered` images, `skipped` corrupt images met while forming it."""
        if skipped:
            self.add_skipped(skipped)
        return self.add_delivered(delivered)

    def add_delivered(self, n):
        with self._lock:
            self.delivered += int(n)
            self._streak = 0
        return np.int64(n)

    @property
    def read(self):
        return self.delivered + self.skipped

    def since_mark(self):
        """(images delivered, corrupt images skipped) since the last mark(), e.g. an epoch."""
        return self.delivered - self._mark[0], self.skipped - self._mark[1]

    def names_since_mark(self):
        """The skipped records named since the last mark()."""
        return self.skipped_records[self._mark[2]:]

    def mark(self):
        self._mark = (self.delivered, self.skipped, len(self.skipped_records))

    def __repr__(self):
        return f"PipelineStats(delivered={self.delivered}, skipped={self.skipped})"


def skipped_images_report(stats, print_fn=print):
    """A Keras callback that prints the corrupt images skipped in each epoch and logs the count
    as `skipped_images`:

        model.fit(ds, callbacks=[skipped_images_report(ds.stats)])
    """
    import keras  # lazily: importing tfmargin.data must not fix the Keras backend

    class SkippedImagesReport(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            stats.mark()

        def on_epoch_end(self, epoch, logs=None):
            delivered, skipped = stats.since_mark()
            if logs is not None:
                logs["skipped_images"] = skipped
            if skipped:
                names = stats.names_since_mark()
                shown = "; ".join(names[:5]) + (f"; and {len(names) - 5} more" if len(names) > 5
                                                else "")
                print_fn(f"epoch {epoch + 1}: skipped {skipped} corrupt image(s), delivered "
                         f"{delivered} ({stats.skipped} skipped in total)"
                         + (f": {shown}" if names else ""))

    return SkippedImagesReport()
