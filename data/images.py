"""``ImageFolder``: a dataset of images stored one sub-folder per class (torchvision's layout).

::

    root/cat/001.png
    root/cat/nested/002.jpg
    root/dog/003.png

Classes are the sub-folder names sorted (``class_to_idx = {'cat': 0, 'dog': 1}``); samples
are listed class by class, walking each class folder (sub-folders included) in sorted order,
so indices are the same on every machine. Images are decoded with Pillow, which is an
optional dependency (``pip install 'xpgrad[examples]'``), imported when a folder is opened.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np

from data.dataset import Dataset
from data.transforms import require_pillow

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def find_classes(root: str) -> tuple[list[str], dict[str, int]]:
    """Sorted class folder names under ``root`` and their indices."""
    classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
    if not classes:
        raise FileNotFoundError(f"ImageFolder: no class folders in {root}; expected "
                                "root/<class>/<image files>")
    return classes, {name: i for i, name in enumerate(classes)}


class ImageFolder(Dataset):
    """Images in ``root/<class>/...``; ``dataset[i]`` is ``(image, class_index)``.

    Args:
        root: the folder holding one sub-folder per class.
        transform: applied to the decoded image, a uint8 ``(H, W, C)`` NumPy array (see
            :mod:`data.transforms`; ``ToArray()`` makes it float32 ``(C, H, W)`` in [0, 1]).
        target_transform: applied to the class index.
        extensions: file endings accepted (case-insensitive); other files are skipped.
        mode: Pillow mode images are converted to: 'RGB' (3 channels), 'L' (grayscale, an
            ``(H, W)`` array) or 'RGBA'.

    Attributes: ``classes``, ``class_to_idx``, ``samples`` (list of ``(path, index)``),
    ``targets`` (the class index of every sample).
    """

    def __init__(self, root: str | os.PathLike, transform: Callable | None = None,
                 target_transform: Callable | None = None,
                 extensions: Sequence[str] = IMG_EXTENSIONS, mode: str = "RGB"):
        require_pillow()   # fail now, with the install hint, not at the first sample
        self.root = os.fspath(root)
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f"ImageFolder: {self.root} is not a directory")
        self.transform = transform
        self.target_transform = target_transform
        self.extensions = tuple(e.lower() for e in extensions)
        self.mode = mode
        self.classes, self.class_to_idx = find_classes(self.root)
        self.samples = self._make_samples()
        self.targets = [target for _, target in self.samples]

    def _make_samples(self) -> list[tuple[str, int]]:
        samples, empty = [], []
        for name in self.classes:
            found = 0
            for folder, _, files in sorted(os.walk(os.path.join(self.root, name),
                                                   followlinks=True)):
                for fname in sorted(files):
                    if fname.lower().endswith(self.extensions):
                        samples.append((os.path.join(folder, fname), self.class_to_idx[name]))
                        found += 1
            if not found:
                empty.append(name)
        if empty:
            raise FileNotFoundError(f"ImageFolder: no image files in class folders {empty} "
                                    f"of {self.root}; accepted extensions are "
                                    f"{', '.join(self.extensions)}")
        return samples

    def load_image(self, path: str) -> np.ndarray:
        """Decode ``path`` into a uint8 array in ``self.mode``."""
        Image = require_pillow()
        try:
            with Image.open(path) as img:
                return np.asarray(img.convert(self.mode))
        except (OSError, ValueError, SyntaxError) as exc:   # Pillow's errors for bad files
            raise ValueError(f"ImageFolder: cannot decode {path} as an image ({exc})") \
                from None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, target = self.samples[index]
        image = self.load_image(path)
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def __repr__(self) -> str:
        return (f"ImageFolder(root={self.root!r}, {len(self)} images, "
                f"{len(self.classes)} classes)")
