"""Datasets as uint8 tensors, loaders for FER2013 and class folders, batch augmentation."""

from .augment import PRESETS, AugmentConfig, augment_batch, eval_views, mixup, normalize
from .faceset import CLASSES, IMAGE_SIZE, DataError, FaceSet, LoadSummary
from .loaders import (
    FER2013_SIZES,
    SPLITS,
    list_class_folders,
    load_class_folders,
    load_fer2013,
    load_fer2013_csv,
    load_fer2013_folders,
    load_notes,
    resolve_data_dir,
)

__all__ = [
    "CLASSES",
    "FER2013_SIZES",
    "IMAGE_SIZE",
    "PRESETS",
    "SPLITS",
    "AugmentConfig",
    "DataError",
    "FaceSet",
    "LoadSummary",
    "augment_batch",
    "eval_views",
    "list_class_folders",
    "load_class_folders",
    "load_fer2013",
    "load_fer2013_csv",
    "load_fer2013_folders",
    "load_notes",
    "mixup",
    "normalize",
    "resolve_data_dir",
]
