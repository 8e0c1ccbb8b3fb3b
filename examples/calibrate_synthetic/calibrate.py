"""How hard is a synthetic dataset? Two checks for calibrating `Difficulty`.

1. Model-free (seconds, numpy): `pixel_verification(bin_path)`: verification accuracy
   (insightface protocol, `tfmargin.evaluate.verification`, 10 folds) of raw pixels and of
   standardised grey pixels, plus how close same-identity pairs are: near-duplicate pairs would
   score ~100% here. `fisherface_verification(data_dir)`: a classic learned linear baseline
   (PCA + LDA "Fisherfaces" fitted on train.rec) on test.bin: how far a trained but linear
   matcher gets, a cheap stand-in for "a good model" when no training run fits.
2. `calibrate(data_dir, ...)`: trains a larger and a smaller backbone the same way (ArcFace
   head, same batches, same time budget or step count) on train.rec and reports each one's
   test.bin accuracy. The default difficulty should leave a clear gap between them, with the
   larger one well below 100%. `python -m examples.calibrate_synthetic` runs it.
"""

import os
import time

import numpy as np

from tfmargin.pixels import to_model_input


def _features(images, kind):
    x = images.astype(np.float64)
    if kind == "pixels":  # what a nearest-neighbour matcher on raw RGB sees
        return to_model_input(x).astype(np.float64).reshape(len(x), -1)
    if kind == "grey_standardised":  # illumination-normalised luminance of the central face
        grey = x[:, 16:96, 16:96] @ np.array([0.299, 0.587, 0.114])
        grey = grey.reshape(len(x), -1)
        grey -= grey.mean(axis=1, keepdims=True)
        return grey / (grey.std(axis=1, keepdims=True) + 1e-6)
    raise ValueError(f"unknown feature {kind!r}")


def pixel_verification(bin_path, features=("pixels", "grey_standardised")):
    """Model-free verification of a .bin: {feature: {accuracy, accuracy_std, same_cosine,
    different_cosine, near_duplicates}}; near_duplicates is the share of same-identity pairs
    with cosine > 0.99."""
    from tfmargin.data.verification_bin import load_verification_bin
    from tfmargin.evaluate.verification import verification

    images, issame = load_verification_bin(bin_path)
    out = {"pairs": int(len(issame))}
    for kind in features:
        f = _features(images, kind)
        f /= np.linalg.norm(f, axis=1, keepdims=True) + 1e-12
        a, b = f[0::2], f[1::2]
        cos = np.sum(a * b, axis=1)
        result = verification(a, b, issame, thresholds="exact")
        out[kind] = {"accuracy": result.accuracy, "accuracy_std": result.accuracy_std,
                     "same_cosine": float(cos[issame].mean()),
                     "different_cosine": float(cos[~issame].mean()),
                     "near_duplicates": float(np.mean(cos[issame] > 0.99))}
    return out


def _grey_small(images):
    """uint8 (N, 112, 112, 3) -> float64 (N, 56 * 56): grey, 2x2-averaged, standardised."""
    grey = images.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    grey = grey.reshape(len(grey), 56, 2, 56, 2).mean(axis=(2, 4)).reshape(len(grey), -1)
    grey -= grey.mean(axis=1, keepdims=True)
    return grey / (grey.std(axis=1, keepdims=True) + 1e-6)


def fit_fisherfaces(features, labels, pca_dims=300, lda_dims=None, shrinkage=1e-3):
    """PCA (to `pca_dims`) then LDA (to at most classes - 1 dims) on float (N, D) features:
    returns (mean, projection (D, k)). The within-class scatter is shrunk towards its mean
    eigenvalue by `shrinkage` so that it stays invertible."""
    x = np.asarray(features, np.float64)
    labels = np.asarray(labels).reshape(-1)
    mean = x.mean(axis=0)
    x = x - mean
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    pca = vt[:min(pca_dims, len(vt))].T
    z = x @ pca
    classes, index = np.unique(labels, return_inverse=True)
    centres = np.zeros((len(classes), z.shape[1]))
    np.add.at(centres, index, z)
    centres /= np.bincount(index)[:, None]
    within = z - centres[index]
    sw = within.T @ within / len(z)
    sw += shrinkage * np.trace(sw) / len(sw) * np.eye(len(sw))
    counts = np.bincount(index)[:, None]
    sb = (centres * counts).T @ centres / len(z)
    # Generalised eigenproblem sb w = l sw w, via the Cholesky factor of sw.
    chol = np.linalg.cholesky(sw)
    inv = np.linalg.inv(chol)
    vals, vecs = np.linalg.eigh(inv @ sb @ inv.T)
    k = min(lda_dims or len(classes) - 1, len(classes) - 1, len(vals))
    lda = inv.T @ vecs[:, ::-1][:, :k]
    return mean, pca @ lda


def fisherface_verification(data_dir, max_train_images=20000, pca_dims=300, arrays=None):
    """Fit Fisherfaces on (up to `max_train_images` of) data_dir/train.rec and verify
    data_dir/test.bin with them: {"accuracy", "accuracy_std", "train_images", "dims"}.
    `arrays`: the set already decoded by `tfmargin.data.feed.load_rec_arrays`, to reuse."""
    from tfmargin.data.feed import load_rec_arrays
    from tfmargin.data.verification_bin import load_verification_bin
    from tfmargin.evaluate.verification import verification

    if arrays is None:
        images, labels = load_rec_arrays(os.path.join(data_dir, "train.rec"), max_train_images)
    else:  # the same evenly spaced subset load_rec_arrays would read
        pick = np.linspace(0, len(arrays[1]) - 1, min(len(arrays[1]), max_train_images))
        images, labels = arrays[0][pick.astype(int)], arrays[1][pick.astype(int)]
    mean, projection = fit_fisherfaces(_grey_small(images), labels, pca_dims)
    test, issame = load_verification_bin(os.path.join(data_dir, "test.bin"))
    emb = (_grey_small(test) - mean) @ projection
    result = verification(emb[0::2], emb[1::2], issame, thresholds="exact")
    return {"accuracy": result.accuracy, "accuracy_std": result.accuracy_std,
            "train_images": int(len(images)), "dims": int(projection.shape[1])}


def _train_one(name, data_dir, num_classes, steps, seconds, batch_size, learning_rate, scale,
               margin, seed, log, feed="tfdata", arrays=None):
    import keras

    from tfmargin.heads import ArcFace
    from tfmargin.models import build_backbone
    from tfmargin.train.build import compiled_classifier
    from tfmargin.train.config import TrainConfig

    keras.utils.set_random_seed(seed)
    backbone = build_backbone(name, embedding_size=512, name="backbone")
    # SGD with momentum 0.9 and Keras' (decoupled) weight decay 5e-4, through the library's
    # one classifier builder: a cosine schedule with a 10 % linear warm-up over `steps`, or a
    # constant rate when only a time budget is given.
    if steps:
        recipe = TrainConfig(role="teacher", lr=learning_rate, lr_schedule="cosine", steps=steps,
                             lr_warmup_steps=max(1, steps // 10), weight_decay_mode="decoupled")
    else:
        recipe = TrainConfig(role="teacher", lr=learning_rate, lr_schedule="piecewise",
                             lr_steps=(), weight_decay_mode="decoupled")
    model = compiled_classifier(backbone, ArcFace(num_classes, scale=scale, margin=margin,
                                                  name="arcface"), recipe)
    steps_per_epoch = max(1, min(steps or 10**9, 100))
    if feed == "numpy":  # no tf.data: JAX on a GPU host without TensorFlow
        from tfmargin.data.feed import ArrayFeed

        data = ArrayFeed(*arrays, batch_size=batch_size, steps_per_epoch=steps_per_epoch,
                         flip=True, seed=seed)
    else:
        from tfmargin.data.pipeline import train_dataset

        data = train_dataset(os.path.join(data_dir, "train.rec"), batch_size, seed=seed,
                             repeat=True, flip=True)

    class Budget(keras.callbacks.Callback):
        """Stops at `seconds` of training (the step count still sets the schedule)."""

        def on_train_begin(self, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if seconds and time.perf_counter() - self.start > seconds:
                self.model.stop_training = True

    epochs = -(-(steps or 10**9) // steps_per_epoch)
    start = time.perf_counter()
    history = model.fit(data, steps_per_epoch=steps_per_epoch, epochs=epochs, verbose=0,
                        callbacks=[Budget()], shuffle=False)  # the dataset shuffles itself
    elapsed = time.perf_counter() - start
    trained = len(history.history["loss"]) * steps_per_epoch
    log(f"{name}: {trained} steps in {elapsed:.0f} s, final loss "
        f"{history.history['loss'][-1]:.3f}, train accuracy {history.history['accuracy'][-1]:.3f}")
    return model, backbone, {"steps": trained, "seconds": round(elapsed, 1),
                   "final_loss": float(history.history["loss"][-1]),
                   "train_accuracy": float(history.history["accuracy"][-1])}


def _bin_accuracy(backbone, bin_path):
    from tfmargin.data.verification_bin import load_verification_bin
    from tfmargin.evaluate.verification import verification_from_embeddings

    images, issame = load_verification_bin(bin_path)
    x = to_model_input(images)
    emb = backbone.predict(x, batch_size=128, verbose=0) + backbone.predict(
        x[:, :, ::-1], batch_size=128, verbose=0)  # flip-sum, as insightface evaluates
    result = verification_from_embeddings(emb, issame)
    return {"accuracy": result.accuracy, "accuracy_std": result.accuracy_std}


def calibrate(data_dir, larger="mbf", smaller="mobilefacenet", steps=2000, seconds=None,
              batch_size=64, learning_rate=0.1, scale=64.0, margin=0.5, seed=0, log=print,
              others=(), feed=None, save_dir=None):
    """Train `larger` and `smaller` (tfmargin.models names) identically with an ArcFace head on
    data_dir/train.rec for `steps` SGD steps (cosine schedule with warm-up; stopped early at
    `seconds` if given) and report their val.bin / test.bin accuracy and the pixel baseline.

    Returns {"pixels": pixel_verification(test.bin), "fisherfaces": fisherface_verification(...),
    name: {"val", "test", "steps", ...}, ...,
    "gap": test accuracy of larger minus smaller}. `others` are further backbones trained and
    scored the same way. `feed` is "tfdata" (tfmargin.data.train_dataset) or "numpy" (the set
    decoded once into memory and served by tfmargin.data.feed.ArrayFeed; the default where
    TensorFlow is missing, e.g. Keras on JAX on a lent GPU host). With `save_dir`, each trained
    classifier (backbone + ArcFace head, whose weights are the class centers) is saved there
    as NAME.keras.
    """
    import keras

    from tfmargin.data import images as codec
    from tfmargin.data.recordio import read_property

    prop = read_property(data_dir)
    if prop is None:
        raise ValueError(f"{data_dir}: no `property` file; generate the data first "
                         "(python -m tfmargin.cli.prepare synthetic --output=...)")
    num_classes = int(prop[0])
    report = {"data_dir": os.fspath(data_dir), "steps": steps, "seconds": seconds,
              "batch_size": batch_size, "learning_rate": learning_rate, "scale": scale,
              "margin": margin, "seed": seed,
              "pixels": pixel_verification(os.path.join(data_dir, "test.bin"))}
    if feed is None:
        feed = "numpy" if codec.tf is None else "tfdata"
    arrays = None
    if feed == "numpy":  # decoded once, for Fisherfaces and for training
        from tfmargin.data.feed import load_rec_arrays

        arrays = load_rec_arrays(os.path.join(data_dir, "train.rec"))
    report["fisherfaces"] = fisherface_verification(data_dir, arrays=arrays)
    report["feed"], report["backend"] = feed, keras.backend.backend()
    for name in (larger, smaller, *others):
        model, backbone, info = _train_one(name, data_dir, num_classes, steps, seconds,
                                           batch_size, learning_rate, scale, margin, seed, log,
                                           feed, arrays)
        if save_dir:
            from tfmargin.atomic import atomic_path

            os.makedirs(save_dir, exist_ok=True)
            with atomic_path(os.path.join(save_dir, f"{name}.keras"), ".keras") as tmp:
                # an uncompiled twin sharing the layers: no optimizer state in the file
                keras.Model(model.inputs, model.outputs, name=model.name).save(tmp)
        for split in ("val", "test"):
            path = os.path.join(data_dir, f"{split}.bin")
            if os.path.exists(path):
                info[split] = _bin_accuracy(backbone, path)
        log(f"{name}: " + ", ".join(f"{s} {info[s]['accuracy']:.4f}" for s in ("val", "test")
                                    if s in info))
        report[name] = info
    if "test" in report[larger] and "test" in report[smaller]:
        report["gap"] = report[larger]["test"]["accuracy"] - report[smaller]["test"]["accuracy"]
    return report
