"""Device and precision choice, shared by training, evaluation and inference.

CUDA when present (bf16 autocast where the GPU supports it, else fp16 with a grad scaler), otherwise
the CPU with bf16 autocast, channels_last and every core: on AVX-512-bf16 CPUs that roughly doubles
training throughput over fp32 for the conv nets of the zoo.

bf16 autocast only where the CPU does bf16 in hardware (AVX-512 or AMX, what oneDNN needs): on an
AVX2-only CPU PyTorch falls back to slow reference kernels, measured on a 2-core AVX2 AMD EPYC at 1.1
against 25.4 training images/s in float32 for sotaresemote_s (14 against 104 faces/s inferring). There
autocast is off and everything runs in float32, unless ``FER_CPU_BF16=1`` forces bf16 (to reproduce
numbers made in bf16 exactly, slowly); ``FER_CPU_BF16=0`` turns it off everywhere.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
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


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """Whether this CPU runs bf16 convolutions and matrix products in hardware (oneDNN's own test)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def uses_amp(device: torch.device, enabled: bool = True) -> bool:
    """Whether :func:`autocast` lowers precision on ``device``: asked for, and on CUDA or a CPU with
    fast bf16 (``FER_CPU_BF16``: 1 forces bf16 on the CPU, 0 turns it off)."""
    if not enabled or device.type == "cuda":
        return enabled
    forced = os.environ.get("FER_CPU_BF16", "").strip()
    return forced == "1" if forced in ("0", "1") else cpu_has_fast_bf16()


def precision_name(device: torch.device, enabled: bool = True) -> str:
    """What :func:`autocast` runs in, for logs and benchmark tables."""
    if not uses_amp(device, enabled):
        return "float32"
    return "bf16 autocast" if amp_dtype(device) == torch.bfloat16 else "fp16 autocast"


def autocast(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager:
    if not uses_amp(device, enabled):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=amp_dtype(device))


def set_threads(threads: int = 0) -> int:
    """Use ``threads`` CPU threads (0: all cores). Returns the number set."""
    n = threads or os.cpu_count() or 1
    torch.set_num_threads(n)
    return n


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed memory for reuse instead of handing it back to the kernel.

    Why: a training step frees and allocates the same large buffers every step (activations, the bf16
    copies autocast makes of the weights, gradients). By default glibc serves big blocks with ``mmap``
    and returns them on ``free``, so every step page-faults them in again: 70 000 faults a step for
    lobo_net, half of the CPU time spent in the kernel. Serving everything from the heap and never
    trimming it gives 0 faults a step and, at the same peak memory, +38% images/s for lobo_net over a
    training epoch and +9% for VGGNet in ``scripts/benchmark_training.py`` on 2 CPU cores.
    Process-wide, so only training processes call it.
    Returns whether it took effect (False off Linux/glibc).
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # <malloc.h>
    return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))


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
