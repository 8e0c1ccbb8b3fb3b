"""insightface verification sets (`lfw.bin`, `cfp_fp.bin`, `agedb_30.bin`, ...), read safely.

The file is a pickle of `(bins, issame_list)`: 2N encoded images (pair i is bins[2i], bins[2i+1])
and N booleans. Older files were pickled by Python 2 (str items, loaded with encoding='bytes');
files built with cv2.imencode hold numpy uint8 arrays instead of bytes. A pickle can run any
code when loaded, and these files come from the internet, so they are read with an unpickler
that admits only the few globals this format needs (numpy array reconstruction and the latin-1
bytes codec of protocol-2 pickles) and refuses everything else before it is called. What those
globals may build is bounded too: a pickle is refused once the arrays and buffers it asks for
exceed 64 times the file's size plus 16 MiB (a 78-byte file cannot ask for a gigabyte).
"""

import codecs
import io
import os
import pickle

import numpy as np

from tfmargin.atomic import write_bytes
from tfmargin.data import images as codec
from tfmargin.errors import TfmarginError


class VerificationBinError(TfmarginError, ValueError):
    """A .bin that is not a well-formed verification set; the message names the file."""


class UnsafePickleError(VerificationBinError, pickle.UnpicklingError):
    """A .bin pickle that refers to anything outside what the format needs."""


def _latin1_encode(obj, encoding="latin1", errors="strict"):
    # Python 3 writes bytes under protocol < 3 as _codecs.encode(str, 'latin1'); admit only that.
    if encoding not in ("latin1", "latin-1", "iso-8859-1") or not isinstance(obj, str):
        raise UnsafePickleError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return codecs.encode(obj, "latin1", errors)


def _allowed():
    allowed = {}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = np.ndarray.__reduce__(np.zeros(1))[0]
        allowed[(module, "scalar")] = np.bool_(True).__reduce__()[0]
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        try:
            from numpy._core.numeric import _frombuffer
        except ImportError:  # older numpy
            from numpy.core.numeric import _frombuffer
        allowed[(module, "_frombuffer")] = _frombuffer
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    allowed[("_codecs", "encode")] = _latin1_encode
    allowed[("__builtin__", "bytearray")] = bytearray  # only as a value holder in old pickles
    allowed[("builtins", "bytearray")] = bytearray
    return allowed


_ALLOWED = _allowed()
BUDGET_FACTOR, BUDGET_EXTRA = 64, 16 << 20


def _nbytes(shape, dtype):
    try:
        dims = [int(d) for d in (shape if isinstance(shape, (tuple, list)) else (shape,))]
        itemsize = np.dtype(dtype).itemsize
    except (TypeError, ValueError):
        return 0  # numpy refuses it on its own
    return max(0, int(np.prod(dims, dtype=object))) * itemsize


def _cost(name, args, kwargs):
    """Bytes a call of an admitted global would allocate."""
    if name == "bytearray":
        source = args[0] if args else kwargs.get("source", b"")
        return int(source) if isinstance(source, int) else len(source)
    if name == "_reconstruct" and len(args) >= 3:        # (subtype, shape, dtype code)
        return _nbytes(args[1], args[2])
    if name == "ndarray":
        return _nbytes(args[0] if args else kwargs.get("shape", ()),
                       args[1] if len(args) > 1 else kwargs.get("dtype", float))
    if name == "encode" and args:
        return len(args[0]) if isinstance(args[0], str) else 0
    return 0


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, path, budget):
        super().__init__(file, encoding="bytes")
        self._path, self._budget, self._spent = path, budget, 0

    def find_class(self, module, name):
        try:
            target = _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self._path}: refused to load {module}.{name}: a verification .bin may only "
                "contain encoded images and booleans (the file is not what it claims)") from None
        if name == "dtype":  # plain numeric dtypes only: no objects, no huge void items
            return self._safe_dtype
        if name == "ndarray":  # passed as a class to _reconstruct, or called: charge calls
            return self._ndarray_type(f"{module}.{name}")
        if name == "scalar":  # scalar(dtype, bytes): a numeric scalar from the file's bytes
            def scalar(dtype, *args):
                if len(args) != 1 or not isinstance(args[0], bytes):
                    raise UnsafePickleError(f"{self._path}: refused numpy scalar without data")
                return target(self._safe_dtype(dtype), *args)
            return scalar

        def charged(*args, **kwargs):
            self._charge(_cost(name, args, kwargs), f"{module}.{name}")
            return target(*args, **kwargs)
        return charged

    def _charge(self, nbytes, what):
        self._spent += nbytes
        if self._spent > self._budget:
            raise UnsafePickleError(
                f"{self._path}: refused: the pickle asks for more than {self._budget} bytes "
                f"({what}), far beyond what a file of its size can hold")

    def _safe_dtype(self, *args, **kwargs):
        dtype = np.dtype(*args, **kwargs)
        if dtype.kind not in "biuf" or dtype.itemsize > 8:
            raise UnsafePickleError(f"{self._path}: refused numpy dtype {dtype} (a .bin holds "
                                    "uint8 images and booleans)")
        return dtype

    def _ndarray_type(self, what):
        charge, safe_dtype, path = self._charge, self._safe_dtype, self._path

        def __new__(cls, *args, **kwargs):
            charge(_cost("ndarray", args, kwargs), what)
            return np.ndarray.__new__(cls, *args, **kwargs)

        def __setstate__(self, state):  # BUILD: (version, shape, dtype, fortran, data)
            try:
                shape, dtype, data = state[1], safe_dtype(state[2]), state[4]
            except (IndexError, TypeError):
                raise UnsafePickleError(f"{path}: refused malformed array state") from None
            if not isinstance(data, (bytes, bytearray)):
                raise UnsafePickleError(f"{path}: refused array state without raw bytes")
            charge(_nbytes(shape, dtype), f"{what} state")
            return np.ndarray.__setstate__(self, state)
        return type("ndarray", (np.ndarray,), {"__new__": __new__, "__setstate__": __setstate__})

    def persistent_load(self, pid):
        raise UnsafePickleError(f"{self._path}: persistent ids are not allowed in a .bin file")


def _as_bytes(item, i, path):
    if isinstance(item, (bytes, bytearray)):
        return bytes(item)
    if isinstance(item, np.ndarray) and item.dtype == np.uint8:
        return item.tobytes()
    raise VerificationBinError(f"{path}: image {i} is a {type(item).__name__}"
                     f"{' of ' + str(item.dtype) if isinstance(item, np.ndarray) else ''}, "
                     "expected encoded bytes or a uint8 array")


def load_verification_encoded(path):
    """(list of 2N encoded image bytes, issame bool array (N,)) without decoding."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        budget = BUDGET_FACTOR * os.fstat(f.fileno()).st_size + BUDGET_EXTRA
        try:
            obj = _RestrictedUnpickler(f, path, budget).load()
        except UnsafePickleError as e:
            if str(e).startswith(path):
                raise
            raise UnsafePickleError(f"{path}: {e}") from None  # raised where no path is known
        except Exception as e:  # truncated / not a pickle
            raise VerificationBinError(f"{path}: not a verification .bin pickle ({type(e).__name__}: "
                             f"{e})") from None
    if not (isinstance(obj, (tuple, list)) and len(obj) == 2):
        raise VerificationBinError(f"{path}: expected a pickled (bins, issame_list) pair, got "
                         f"{type(obj).__name__}")
    bins, issame = obj
    if isinstance(issame, np.ndarray):
        issame = issame.reshape(-1).tolist()
    if not isinstance(bins, (list, tuple)) or not isinstance(issame, (list, tuple)):
        raise VerificationBinError(f"{path}: expected lists of images and of booleans, got "
                         f"{type(bins).__name__} and {type(issame).__name__}")
    if not all(isinstance(x, (bool, int, np.bool_, np.integer)) and x in (0, 1)
               for x in issame):
        raise VerificationBinError(f"{path}: issame_list must hold booleans")
    issame = np.asarray(issame, dtype=bool).reshape(-1)
    # a pickle may list one object many times (its memo): count every copy before making them
    total = sum(len(x) if isinstance(x, (bytes, bytearray)) else getattr(x, "nbytes", 0)
                for x in bins)
    if total > budget:
        raise UnsafePickleError(f"{path}: refused: its images come to {total} bytes, far beyond "
                                "what a file of its size can hold (repeated references)")
    encoded = [_as_bytes(item, i, path) for i, item in enumerate(bins)]
    if len(encoded) != 2 * len(issame):
        raise VerificationBinError(f"{path}: {len(encoded)} images for {len(issame)} pairs (expected "
                         f"{2 * len(issame)})")
    return encoded, issame


def load_verification_bin(path, image_size=112):
    """(images uint8 (2N, size, size, 3) RGB, issame bool (N,)) of an insightface .bin.

    Images are decoded (JPEG/PNG/BMP/GIF/WebP) and resized bilinearly when not already at
    `image_size`, as insightface's loader does. Unsafe or malformed pickles raise an error that
    names the file; nothing they reference is executed.
    """
    encoded, issame = load_verification_encoded(path)
    images = codec.decode_images(encoded, image_size, where=os.fspath(path))
    return images, issame


def save_verification_bin(path, images_or_encoded, issame, quality=95):
    """Write `(bins, issame_list)` as insightface does (protocol 4; readable by its loader).

    `images_or_encoded`: a uint8 array (2N, H, W, 3) RGB (encoded to JPEG at `quality`) or a
    sequence of 2N encoded images (bytes, or uint8 1-D arrays as cv2.imencode returns).
    The file is written under a temporary name and moved into place.
    """
    path = os.fspath(path)
    issame = [bool(x) for x in np.asarray(issame).reshape(-1)]
    if isinstance(images_or_encoded, np.ndarray) and images_or_encoded.ndim == 4:
        bins = [codec.encode_jpeg(img, quality) for img in images_or_encoded]
    else:
        bins = [_as_bytes(item, i, path) for i, item in enumerate(images_or_encoded)]
    if len(bins) != 2 * len(issame):
        raise VerificationBinError(f"{path}: {len(bins)} images for {len(issame)} pairs (expected "
                         f"{2 * len(issame)})")
    buf = io.BytesIO()
    pickle.dump((bins, issame), buf, protocol=4)
    return write_bytes(path, buf.getvalue())
