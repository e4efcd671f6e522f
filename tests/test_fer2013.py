"""Checks against the real FER2013 (skipped unless FER2013_DIR is set; CI sets it)."""

from __future__ import annotations

import pytest
import torch

from fer_core.checkpoint import load_checkpoint
from fer_core.data import CLASSES, FER2013_SIZES, load_fer2013
from fer_core.eval import predict_probs
from fer_core.zoo import list_checkpoints

# The table in the dataset's README: class counts per split, in class order.
README_COUNTS = {
    "Training": [3995, 436, 4097, 7215, 4830, 3171, 4965],
    "PublicTest": [467, 56, 496, 895, 653, 415, 607],
    "PrivateTest": [491, 55, 528, 879, 594, 416, 626],
}


@pytest.fixture(scope="module")
def fer2013(fer2013_dir):
    return load_fer2013(fer2013_dir)


def test_splits_have_the_published_counts(fer2013):
    for split, counts in README_COUNTS.items():
        assert fer2013[split].class_counts() == counts, split
        assert fer2013[split].images.shape[1:] == (48, 48)
        assert len(fer2013[split]) == FER2013_SIZES[split]
    assert fer2013["Training"].classes == CLASSES


SHIPPED = [e for e in list_checkpoints() if e.ok and e.report]


@pytest.mark.parametrize("entry", SHIPPED, ids=[e.name for e in SHIPPED])
def test_shipped_checkpoint_reproduces_its_report(entry, fer2013):
    """In float32, as every shipped report is made: that reproduces on any CPU at full speed (a bf16
    report would need bf16, which a CPU without bf16 hardware runs twenty times slower)."""
    assert entry.report.get("precision") == "float32", "remake it: python scripts/evaluate.py --checkpoint ..."
    model, _ = load_checkpoint(entry.weights)
    private = fer2013["PrivateTest"]
    probs = predict_probs(model, private.images, amp=False)
    acc = float((probs.argmax(1) == private.labels).float().mean())
    assert acc == pytest.approx(entry.report["splits"]["PrivateTest"]["none"]["accuracy"], abs=0.001)
    assert entry.report["splits"]["PrivateTest"]["none"]["n"] == len(private) == FER2013_SIZES["PrivateTest"]


def test_every_shipped_folder_is_loadable():
    broken = [e.error for e in list_checkpoints() if not e.ok]
    assert not broken, broken
    for e in list_checkpoints():
        assert torch.is_tensor(next(load_checkpoint(e.weights)[0].parameters()))
