"""Training on many processes (GPUs, nodes) with torchrun and DistributedDataParallel.

``torchrun --nproc_per_node=N scripts/train_all.py ...`` starts N copies of the script and gives each
``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE`` and the rendezvous address in its
environment. The training loop sees ``RANK`` (nanoGPT's test) and joins the job with :func:`setup`;
the rest of this module is the handful of collective operations the loop needs, each a no-op in a
single process so that the loop reads the same either way.

Nothing here starts, watches or kills processes: torchrun does that. When one rank dies, torchrun
stops the others and exits non-zero; the process-group timeout is the backstop for a peer that hangs
instead of dying (on another node, say), so that no rank waits on it forever.

How the work is split (the loop's docstring says why):

- ``batch_size`` is the *global* batch. Every step, each rank takes its contiguous share of the
  global batch (:func:`shard`), so N ranks see exactly the faces one process would see.
- Every rank uses rank 0's shuffle of the training set (broadcast each epoch).
- Rank 0 draws augmentation from the run's own random stream (saved in ``resume.pt``); rank r > 0
  reseeds at every epoch from (seed, epoch, r), so its draws need no saved state and a run resumes
  with any number of ranks.
"""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta

import torch
import torch.distributed as dist

from ..device import pick_device

# a silent peer fails the job after this long; the longest normal wait is rank 0's PublicTest check
DEFAULT_TIMEOUT_MINUTES = 30.0


def backend_for(device: torch.device) -> str:
    """NCCL between GPUs, gloo between CPU processes (NCCL cannot move CPU tensors)."""
    return "nccl" if device.type == "cuda" else "gloo"


def rank_device(name: str, local_rank: int) -> torch.device:
    """The device of the rank with ``local_rank`` on its machine: ``cuda:LOCAL_RANK`` or the CPU.

    ``name`` is the user's ``--device`` (auto, cpu, cuda). A GPU index is refused: under torchrun the
    rank decides the GPU, and two ranks on one GPU is what the index would lead to.
    """
    device = pick_device(name)
    if device.type != "cuda":
        return device
    if device.index is not None:
        raise ValueError(f"--device {name}: under torchrun each rank uses cuda:LOCAL_RANK; pass cuda or auto")
    if local_rank >= torch.cuda.device_count():
        raise RuntimeError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPU(s) on this machine")
    return torch.device("cuda", local_rank)


def setup(device: str = "auto", timeout_minutes: float = DEFAULT_TIMEOUT_MINUTES) -> tuple[int, int, torch.device]:
    """Join the torchrun job (once per process; later calls only read it): ``(rank, world_size, device)``."""
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0))
    dev = rank_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(
            backend_for(dev),
            timeout=timedelta(minutes=timeout_minutes),
            device_id=dev if dev.type == "cuda" else None,
        )
    return rank, dist.get_world_size(), dev


def teardown() -> None:
    """Leave the job (a no-op in a single process), so that the process exits without torch's warning."""
    if dist.is_initialized():
        dist.destroy_process_group()


def cpu_share() -> int:
    """CPU threads for one rank: this machine's cores divided between its ranks (1 process: all)."""
    return max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", 1)))


def rank_seed(seed: int, epoch: int, rank: int) -> int:
    """A seed for ``rank``'s augmentation in ``epoch``: a pure function, so resuming needs no saved state."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{epoch}/{rank}".encode()).digest()[:7], "little")


def steps_per_epoch(n: int, batch_size: int, world_size: int = 1) -> int:
    """Global steps in an epoch of ``n`` faces: the last, partial batch is kept when it has at least
    one face per rank (always in a single process), else dropped: a rank cannot take an empty step."""
    if batch_size < world_size:
        raise ValueError(
            f"batch size {batch_size} is the global batch: it needs at least one face per rank ({world_size})"
        )
    return n // batch_size + int(n % batch_size >= world_size)


def shard(batch: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """This rank's contiguous share of a global batch (sizes differ by at most one; 1 rank: all of it)."""
    return batch.tensor_split(world_size)[rank]


def _is_multi() -> bool:
    return dist.is_initialized() and dist.get_world_size() > 1


def _comm_device() -> torch.device:
    """Where collective tensors must live: the rank's GPU for NCCL, the CPU for gloo."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def all_reduce_sum(values: list[float]) -> list[float]:
    """Sum each number over the ranks (float64, so counts stay exact); unchanged in a single process."""
    if not _is_multi():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def broadcast_floats(values: list[float], src: int = 0) -> list[float]:
    """Rank ``src``'s numbers on every rank (what it measured, so every rank decides alike)."""
    if not _is_multi():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=_comm_device())
    dist.broadcast(t, src=src)
    return t.tolist()


def broadcast_(tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Overwrite ``tensor`` in place with rank ``src``'s copy (it must be on the collective's device)."""
    if _is_multi():
        dist.broadcast(tensor, src=src)
    return tensor


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on any (a stop decision all ranks must share)."""
    if not _is_multi():
        return bool(flag)
    t = torch.tensor([float(bool(flag))], device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if _is_multi():
        dist.barrier()
