"""Class centers held by a head: class-major, one row per class.

Every center-holding head stores its centers as a (C, D) weight named "centers", one (D,) row
per class, as arcface_torch stores its FC weight: Partial FC gathers the sampled rows, so under
TensorFlow a sampled step's gradient is row-sparse (the K sampled rows, IndexedSlices) instead
of a dense (C, D) array, and under model_parallel each device holds a block of whole rows.
Readers keep the (D, C) matrix the rest of the library speaks (teacher-signal files,
`initial_centers`, `find_centers`): `head.centers` is that view, `head.assign_centers(m)` sets
it. Files saved before the layout changed hold (D, C); loading them transposes (a .keras file
says which layout it holds; a .weights.h5 checkpoint is told by its shape, so one of square
centers, as many classes as dimensions, written before the change loads untransposed).
"""

import numpy as np
from keras import ops

LAYOUT = "class_major"  # in every center-holding head's config; absent in (D, C) files


def resolve(layer_name, centers, num_classes, embedding_dim):
    """(centers as float32 or None, num_classes, embedding_dim) from either the array or,
    when a saved model is loaded, the sizes in its config (the values come from the weights)."""
    if centers is not None:
        centers = np.asarray(centers, dtype="float32")
        if centers.ndim != 2:
            raise ValueError(f"{layer_name}: centers must be (embedding_dim, num_classes), "
                             f"got shape {centers.shape}")
        embedding_dim, num_classes = centers.shape
    elif num_classes is None or embedding_dim is None:
        raise ValueError(f"{layer_name}: give the teacher's centers (or, when loading, "
                         "num_classes and embedding_dim)")
    return centers, int(num_classes), int(embedding_dim)


def check_dims(layer_name, embedding_dim, **dims):
    """A clear error when an embedding does not live in the centers' space."""
    for who, dim in dims.items():
        if dim is not None and dim != embedding_dim:
            raise ValueError(
                f"{layer_name}: {who} embedding size {dim} does not match the teacher centers' "
                f"{embedding_dim}; the student must embed into the teacher's space")


def transposed(initializer):
    """`initializer` drawn in the (D, C) order and handed over as (C, D) rows: a seeded run
    starts from the same centers as it did when they were stored (D, C)."""
    def initial_rows(shape, dtype=None):
        return ops.transpose(initializer(tuple(shape)[::-1], dtype=dtype))
    return initial_rows


def add_rows(layer, embedding_dim, num_classes, initial=None, initializer="zeros",
             trainable=False, name="centers"):
    """A (C, D) center weight; `initial` (D, C) values (a teacher's centers) if given."""
    weight = layer.add_weight(
        shape=(num_classes, embedding_dim), trainable=trainable, name=name,
        initializer=initializer if isinstance(initializer, str) else transposed(initializer))
    if initial is not None:
        weight.assign(np.transpose(initial))
    return weight


def add_frozen(layer, initial, embedding_dim, num_classes, name="centers"):
    """A teacher's centers (D, C) as a frozen (non-trainable) (C, D) weight."""
    return add_rows(layer, embedding_dim, num_classes, initial, name=name)


def _rows(value, shape, saved_dim_major):
    """A stored center weight as (C, D) rows: files from before the layout (their config has
    no `center_layout`) and checkpoints whose shape is the transpose are transposed."""
    value = np.asarray(value)
    if value.ndim == 2 and value.shape[::-1] == tuple(shape) and (
            saved_dim_major or value.shape != tuple(shape)):
        return value.T
    return value


class CenterRows:
    """Mixin of the heads that hold class centers as (C, D) rows in `center_rows` (and, for
    `ROW_WEIGHTS` beyond it, further row weights such as a teacher's)."""

    ROW_WEIGHTS = ("center_rows",)
    VIEWS = ("centers",)  # (D, C) transposes of row weights, computed when read
    _saved_dim_major = False

    def __dir__(self):
        # Keras' saving reads every attribute dir() lists: a view would transpose the centers
        # (gigabytes at millions of classes) for nothing at every save and load
        return [name for name in super().__dir__() if name not in self.VIEWS]

    @property
    def centers(self):
        """The class centers as a (D, C) tensor (None before the head is built); read-only:
        set them with `assign_centers`."""
        rows = getattr(self, "center_rows", None)
        return None if rows is None else ops.transpose(rows)

    def assign_centers(self, centers):
        """Set the class centers from a (D, C) array."""
        self.center_rows.assign(np.transpose(np.asarray(centers, "float32")))

    def center_config(self):
        return {"center_layout": LAYOUT}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        layout = config.pop("center_layout", None)
        if layout not in (None, LAYOUT):
            raise ValueError(f"{cls.__name__}: unknown center_layout {layout!r}")
        layer = super().from_config(config)
        layer._saved_dim_major = layout is None
        return layer

    def load_own_variables(self, store):
        variables = self._trainable_variables + self._non_trainable_variables
        if len(store.keys()) != len(variables):
            return super().load_own_variables(store)  # Keras' own error names the mismatch
        rows = {id(getattr(self, name)) for name in self.ROW_WEIGHTS
                if getattr(self, name, None) is not None}
        values = {}
        for i, variable in enumerate(variables):
            value = store[f"{i}"]
            values[f"{i}"] = (_rows(value, variable.shape, self._saved_dim_major)
                              if id(variable) in rows else value)
        super().load_own_variables(values)
        self._saved_dim_major = False  # what it holds now, and saves, is rows
