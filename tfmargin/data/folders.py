"""Identity folders: `root/<identity>/<image>`, one sub-folder per identity, any common format.

Identities are the sub-folders that hold at least one image, sorted by name; label i is the i-th
of them. Images are the files with a known extension (case-insensitive), sorted by name.
"""

import os

import numpy as np

from tfmargin.data.images import IMAGE_EXTENSIONS


def _is_image(name):
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def is_image_folder(root):
    """True when `root` is a directory with at least one identity sub-folder holding images."""
    if not os.path.isdir(root):
        return False
    for entry in os.scandir(root):
        if entry.is_dir() and any(_is_image(n) for n in os.listdir(entry.path)):
            return True
    return False


class ImageFolder:
    """Index of an identity-folder dataset.

        folder = ImageFolder("faces/")
        folder.classes[3], folder.num_classes, len(folder)
        data, label = folder.read(0)            # encoded bytes, int class id

    `paths[i]` is relative to root; `keys()` returns those relative paths (used in messages).
    """

    def __init__(self, root):
        self.root = os.fspath(root)
        if not os.path.isdir(self.root):
            raise ValueError(f"{self.root}: not a directory")
        classes, paths, labels = [], [], []
        for name in sorted(os.listdir(self.root)):
            sub = os.path.join(self.root, name)
            if not os.path.isdir(sub) or name.startswith("."):
                continue
            files = sorted(f for f in os.listdir(sub) if _is_image(f)
                           and os.path.isfile(os.path.join(sub, f)))
            if not files:
                continue
            label = len(classes)
            classes.append(name)
            paths.extend(os.path.join(name, f) for f in files)
            labels.extend([label] * len(files))
        if not paths:
            loose = [f for f in os.listdir(self.root) if _is_image(f)]
            hint = (f" ({len(loose)} images lie directly in it: put each identity's images in "
                    "its own sub-folder)") if loose else ""
            raise ValueError(f"{self.root}: no identity sub-folders with images{hint}")
        self.classes = classes
        self.paths = paths
        self.labels = np.asarray(labels, np.int64)
        self.num_classes = len(classes)

    def __len__(self):
        return len(self.paths)

    def keys(self):
        return list(self.paths)

    def full_path(self, i):
        return os.path.join(self.root, self.paths[i])

    def read(self, i):
        """(encoded bytes, label) of image i."""
        with open(self.full_path(i), "rb") as f:
            return f.read(), int(self.labels[i])

    def read_many(self, positions):
        return [self.read(int(i)) for i in positions]

    def __repr__(self):
        return f"ImageFolder({self.root!r}, images={len(self)}, num_classes={self.num_classes})"
