"""Faces in the wild: pluggable detectors, training-identical crops, tracking, video, drawings.

``fer_core.predict`` (in ``fer_core.inference``) ties these together; this package knows nothing of
models, so a detector can be tried on its own.
"""

from .crop import MIN_FACE_PX, MIN_SHARPNESS, LoadedImage, crop_face, quality_flags, read_image, sharpness, square_box
from .detect import (
    DEFAULT_DETECTOR,
    Detection,
    FaceDetector,
    FixedBoxes,
    HaarDetector,
    WholeImage,
    create_detector,
    list_detectors,
    register_detector,
    resolve_detector,
)
from .scene import compose_scene, detectable_faces
from .track import IoUTracker, iou
from .video import VIDEO_SUFFIXES, is_video, iter_frames, video_info, write_video

__all__ = [
    "DEFAULT_DETECTOR",
    "MIN_FACE_PX",
    "MIN_SHARPNESS",
    "VIDEO_SUFFIXES",
    "Detection",
    "FaceDetector",
    "FixedBoxes",
    "HaarDetector",
    "IoUTracker",
    "LoadedImage",
    "WholeImage",
    "compose_scene",
    "create_detector",
    "crop_face",
    "detectable_faces",
    "iou",
    "is_video",
    "iter_frames",
    "list_detectors",
    "quality_flags",
    "read_image",
    "register_detector",
    "resolve_detector",
    "sharpness",
    "square_box",
    "video_info",
    "write_video",
]
