"""Stable face ids across video frames, by box overlap (IoU) with the previous frames' boxes.

Greedy matching, best overlap first: enough for the few faces of a home video or a webcam, with no
appearance model to train. A track survives ``max_missed`` analysed frames without a match (a blink
of the detector), then its id retires; ids are never reused.
"""

from __future__ import annotations

from dataclasses import dataclass

Box = tuple[int, int, int, int]


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


@dataclass
class _Track:
    id: int
    box: Box
    missed: int = 0


class IoUTracker:
    """``update(boxes)`` returns one id per box, the same id as the overlapping box of earlier frames."""

    def __init__(self, min_iou: float = 0.3, max_missed: int = 5) -> None:
        self.min_iou, self.max_missed = min_iou, max_missed
        self._tracks: list[_Track] = []
        self._next = 1

    def update(self, boxes: list[Box]) -> list[int]:
        pairs = sorted(
            ((iou(t.box, b), ti, bi) for ti, t in enumerate(self._tracks) for bi, b in enumerate(boxes)), reverse=True
        )
        ids: list[int | None] = [None] * len(boxes)
        used: set[int] = set()
        for overlap, ti, bi in pairs:
            if overlap < self.min_iou:
                break
            if ti in used or ids[bi] is not None:
                continue
            used.add(ti)
            track = self._tracks[ti]
            track.box, track.missed = boxes[bi], 0
            ids[bi] = track.id
        for ti, t in enumerate(self._tracks):
            if ti not in used:
                t.missed += 1
        self._tracks = [t for t in self._tracks if t.missed <= self.max_missed]
        for bi, b in enumerate(boxes):
            if ids[bi] is None:
                ids[bi] = self._next
                self._tracks.append(_Track(self._next, b))
                self._next += 1
        return [int(i) for i in ids]  # type: ignore[arg-type]
