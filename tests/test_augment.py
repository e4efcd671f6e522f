"""Batch augmentation keeps shapes and value ranges; evaluation views are exact crops."""

from __future__ import annotations

import pytest
import torch

from fer_core.data import PRESETS, augment_batch, eval_views, mixup


@pytest.fixture
def faces(mini_splits):
    return mini_splits["Training"].images[:16]


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("size,crop", [(48, 1.0), (40, 40 / 48), (96, 1.0)])
def test_shapes_and_ranges(faces, preset, size, crop):
    torch.manual_seed(0)
    x = augment_batch(faces, size, crop, PRESETS[preset], mean=0.5, std=0.25)
    assert x.shape == (16, 1, size, size) and x.dtype == torch.float32
    assert x.min() >= (0 - 0.5) / 0.25 - 1e-5 and x.max() <= (1 - 0.5) / 0.25 + 1e-5


def test_no_augmentation_is_the_identity(faces):
    x = augment_batch(faces, 48, 1.0, PRESETS["none"], mean=0.0, std=1.0)
    assert torch.allclose(x[:, 0] * 255, faces.float(), atol=1e-3)


def test_augmentation_is_random_but_seeded(faces):
    torch.manual_seed(1)
    a = augment_batch(faces, 48, 1.0, PRESETS["standard"], 0.5, 0.25)
    b = augment_batch(faces, 48, 1.0, PRESETS["standard"], 0.5, 0.25)
    torch.manual_seed(1)
    c = augment_batch(faces, 48, 1.0, PRESETS["standard"], 0.5, 0.25)
    assert not torch.equal(a, b) and torch.equal(a, c)


def test_eval_views_are_exact_crops(faces):
    center = eval_views(faces, 40, 40 / 48, "none", mean=0.0, std=1.0)
    assert center.shape == (1, 16, 1, 40, 40)
    assert torch.allclose(center[0, :, 0] * 255, faces[:, 4:44, 4:44].float(), atol=1e-3)
    flip = eval_views(faces, 40, 40 / 48, "flip", 0.0, 1.0)
    assert torch.allclose(flip[1], flip[0].flip(-1), atol=1e-5)
    ten = eval_views(faces, 40, 40 / 48, "tencrop", 0.0, 1.0)
    assert ten.shape[0] == 10
    corner = ten[1, :, 0] * 255  # top-left crop
    assert torch.allclose(corner, faces[:, :40, :40].float(), atol=1e-3)


def test_mixup_blends_images_and_labels(faces):
    x = faces.float().unsqueeze(1)
    y = torch.arange(16)
    torch.manual_seed(0)
    mixed, y_a, y_b, lam = mixup(x, y, alpha=0.4)
    assert 0 <= lam <= 1 and mixed.shape == x.shape
    assert sorted(y_b.tolist()) == y.tolist() and torch.equal(y_a, y)
    assert torch.allclose(mixed, lam * x + (1 - lam) * x[y_b], atol=1e-4)
