#!/usr/bin/env python
"""Training throughput: our pipeline against how public FER repositories train, same model, same machine.

- ours: FER2013 decoded once into a uint8 tensor, whole batches augmented as tensors on the training
  device, bf16 autocast and channels_last on the CPU (AMP on CUDA), glibc told to keep freed memory
  (:func:`fer_core.device.keep_freed_memory`) -- exactly ``fer_core.train``'s step.
- baseline: torchvision ``ImageFolder`` over the JPEG files, per-sample PIL + torchvision transforms
  (grayscale, random resized crop 40, flip, rotation, normalise, random erasing) in a ``DataLoader``
  with ``--workers`` processes, fp32, contiguous memory format.

Both train VGGNet (batch 64) for ``--steps`` optimizer steps after ``--warmup`` steps; the script
prints images/s for each and the ratio.

    python scripts/benchmark_training.py --data ~/fer2013
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fer_core.data import PRESETS, augment_batch, load_fer2013, resolve_data_dir  # noqa: E402
from fer_core.device import autocast, hardware_name, keep_freed_memory, pick_device, set_threads  # noqa: E402
from fer_core.models import create_model  # noqa: E402
from fer_core.train.optim import build_optimizer  # noqa: E402


def timed_steps(step, warmup: int, steps: int) -> float:
    """Run ``step()`` warmup + steps times; images/s over the timed steps."""
    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    n = sum(step() for _ in range(steps))
    return n / (time.perf_counter() - t0)


def ours(data_dir: Path, device: torch.device, batch: int, warmup: int, steps: int) -> float:
    train = load_fer2013(data_dir)["Training"]
    x_all, y_all = train.images.to(device), train.labels.to(device)
    model = create_model("vggnet").to(device, memory_format=torch.channels_last).train()
    cfg = model.default_cfg
    opt = build_optimizer(model, "sgd", 0.01, 1e-4)
    aug = PRESETS["standard"]

    def step() -> int:
        idx = torch.randint(0, len(train), (batch,), device=device)
        x = augment_batch(x_all[idx], cfg.input_size, cfg.crop, aug, cfg.mean, cfg.std)
        x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y_all[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return batch

    return timed_steps(step, warmup, steps)


def baseline(data_dir: Path, device: torch.device, batch: int, warmup: int, steps: int, workers: int) -> float:
    from torchvision import datasets, transforms

    tf = transforms.Compose(
        [
            transforms.Grayscale(),
            transforms.RandomResizedCrop(40, scale=(0.8, 1.0)),
            transforms.RandomHorizontalFlip(),
            transforms.RandomRotation(10),
            transforms.ToTensor(),
            transforms.Normalize((0.5,), (0.25,)),
            transforms.RandomErasing(),
        ]
    )
    loader = torch.utils.data.DataLoader(
        datasets.ImageFolder(data_dir / "train", tf),
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
        persistent_workers=workers > 0,
    )
    model = create_model("vggnet").to(device).train()
    opt = build_optimizer(model, "sgd", 0.01, 1e-4)
    batches = iter(loader)

    def step() -> int:
        x, y = next(batches)
        loss = F.cross_entropy(model(x.to(device)), y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return batch

    return timed_steps(step, warmup, steps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="FER2013 Kaggle folder (default: $FER2013_DIR)")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers for the baseline")
    args = p.parse_args()
    data_dir = resolve_data_dir(args.data)
    device = pick_device(args.device)
    set_threads(0)
    base_ips = baseline(data_dir, device, args.batch_size, args.warmup, args.steps, args.workers)
    keep_freed_memory()  # as fer_core.train does; process-wide, so only after the baseline has run
    ours_ips = ours(data_dir, device, args.batch_size, args.warmup, args.steps)
    print(f"hardware: {hardware_name(device)}")
    print(f"VGGNet, batch {args.batch_size}, {args.steps} timed steps after {args.warmup} warm-up steps")
    print(f"ours (uint8 tensor, batch augmentation, bf16/AMP, channels_last): {ours_ips:8.1f} images/s")
    print(f"baseline (PIL + torchvision transforms DataLoader, fp32):          {base_ips:8.1f} images/s")
    print(f"speed-up: {ours_ips / base_ips:.2f}x")


if __name__ == "__main__":
    main()
