"""The in-memory form of every dataset: decoded once into a uint8 N x 48 x 48 tensor plus labels.

Training, evaluation and the dashboard all work on this form, so nothing downstream decodes an image
file again. The class order is the order of the original ``fer2013.csv`` (not alphabetical).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
IMAGE_SIZE = 48  # FER2013's native resolution; every loader converts to it.


class DataError(ValueError):
    """A dataset problem the user can fix (missing folder, empty split, malformed csv row...)."""


def count(n: int, noun: str) -> str:
    """``count(1, "image")`` is "1 image", ``count(3, "image")`` "3 images": messages users read."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


@dataclass
class LoadSummary:
    """What a loader had to do to get the data into shape, for the user to read."""

    converted_to_gray: int = 0
    resized: int = 0
    skipped_classes: dict[str, int] = field(default_factory=dict)  # folder name -> images skipped
    bad_files: list[str] = field(default_factory=list)  # "path: reason"

    def merge(self, other: LoadSummary) -> None:
        self.converted_to_gray += other.converted_to_gray
        self.resized += other.resized
        for k, v in other.skipped_classes.items():
            self.skipped_classes[k] = self.skipped_classes.get(k, 0) + v
        self.bad_files += other.bad_files

    def lines(self) -> list[str]:
        out = []
        if self.converted_to_gray:
            out.append(f"{count(self.converted_to_gray, 'colour image')} converted to grayscale")
        if self.resized:
            out.append(f"{count(self.resized, 'image')} resized to {IMAGE_SIZE}x{IMAGE_SIZE}")
        for name, n in sorted(self.skipped_classes.items()):
            out.append(f"skipped {count(n, 'image')} of class '{name}' (not one of {', '.join(CLASSES)})")
        if self.bad_files:
            out.append(f"skipped {count(len(self.bad_files), 'unreadable file')}, e.g. {self.bad_files[0]}")
        return out


@dataclass
class FaceSet:
    """Faces of one split: ``images`` uint8 (N, 48, 48), ``labels`` int64 (N,), ``names`` source ids."""

    images: torch.Tensor
    labels: torch.Tensor
    names: list[str]
    classes: tuple[str, ...] = CLASSES
    summary: LoadSummary | None = None  # what the loader converted or skipped

    def __post_init__(self) -> None:
        n = len(self.names)
        if self.images.dtype != torch.uint8 or self.images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"images must be uint8 (N, 48, 48), got {self.images.dtype} {tuple(self.images.shape)}")
        if self.images.shape[0] != n or self.labels.shape[0] != n:
            raise ValueError("images, labels and names must have the same length")

    def __len__(self) -> int:
        return len(self.names)

    def class_counts(self) -> list[int]:
        return torch.bincount(self.labels, minlength=len(self.classes)).tolist()

    def subset(self, index: torch.Tensor | list[int]) -> FaceSet:
        index = torch.as_tensor(index, dtype=torch.long)
        return FaceSet(self.images[index], self.labels[index], [self.names[i] for i in index.tolist()], self.classes)
