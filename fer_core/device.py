"""Device and precision choice, shared by training, evaluation and inference.

CUDA when present (bf16 autocast where the GPU supports it, else fp16 with a grad scaler), otherwise
the CPU with bf16 autocast, channels_last and every core: on AVX-512-bf16 CPUs that roughly doubles
training throughput over fp32 for the conv nets of the zoo.
"""

from __future__ import annotations

import contextlib
import os
import platform

import torch


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but no CUDA GPU is available")
    return dev


def amp_dtype(device: torch.device) -> torch.dtype:
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def autocast(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager:
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=amp_dtype(device))


def set_threads(threads: int = 0) -> int:
    """Use ``threads`` CPU threads (0: all cores). Returns the number set."""
    n = threads or os.cpu_count() or 1
    torch.set_num_threads(n)
    return n


def hardware_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"CPU {cpu} x{os.cpu_count()} threads={torch.get_num_threads()}"
