"""What MarginDistillation's per-sample margins come to on a teacher signal's images."""

import numpy as np


def mean_teacher_margin(signal, m_max=0.5, m_min=0.2, d_max="batch", clip=False,
                        batch_size=512):
    """The mean of MarginDistillation's margins m_i = (m_max - m_min) / D_max * cos_t_i + m_min
    over every image of `signal` (a TeacherSignal), cos_t_i the cosine between the teacher's
    embedding and its class center, D_max the largest cos_t of each batch of `batch_size`
    ("batch", as the head computes it) or a fixed number; float64, streamed.

    Signals written with shuffle=True hold the images in a random order, so consecutive
    records make the random batches a training run draws; for a signal in the dataset's
    (identity-sorted) order D_max would come from one or two identities at a time."""
    from tfmargin.data.tfrecord import tfrecord_dataset

    centers = np.asarray(signal.centers, np.float64)
    ds = tfrecord_dataset(signal.directory).map(lambda r: (r["label"], r["teacher"]))
    total, count = 0.0, 0
    for labels, teacher in ds.batch(batch_size).as_numpy_iterator():
        t = teacher.astype(np.float64)
        t /= np.linalg.norm(t, axis=1, keepdims=True)
        cos = np.einsum("bd,db->b", t, centers[:, labels])
        top = max(cos.max(), 1e-6) if d_max == "batch" else float(d_max)
        m = (m_max - m_min) / top * cos + m_min
        if clip:
            m = np.clip(m, m_min, m_max)
        total += float(m.sum())
        count += m.size
    if not count:
        raise ValueError(f"{signal.directory}: the teacher signal holds no images")
    return total / count
