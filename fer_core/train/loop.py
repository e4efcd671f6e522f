"""The training loop, for every model in the zoo. Read it top to bottom.

One run = one folder ``<out>/<name>/`` holding:

- ``config.json``   the TrainConfig
- ``log.csv``       one row per epoch (train/val loss and accuracy, lr, seconds, images/s)
- ``best.safetensors`` (+ ``.json``)  the weights with the best PublicTest accuracy so far
- ``resume.pt``     everything to continue exactly: weights, optimizer, plateau/EMA state, RNG
                    state, epoch, history. Loaded with ``weights_only=True`` (no arbitrary pickles).

The data lives on the training device as uint8 and is augmented a whole batch at a time. Resume
state is written at each epoch boundary, so ``kill -9`` loses at most the epoch in progress, and a
resumed run continues with the same random numbers as an uninterrupted one.

Under torchrun (``RANK`` set) the same loop trains with DistributedDataParallel (helpers in
:mod:`.distributed`): ``batch_size`` stays the global batch and each rank trains on its share of every
batch, so N ranks take the same steps as one process, up to BatchNorm statistics (per rank unless
``sync_bn``) and augmentation draws. Gradients are averaged by DDP, each rank's loss weighted by its
share of the batch so that uneven shares still give the global batch's mean. Only rank 0 shows
progress, evaluates, and writes the run folder; the numbers every rank needs to decide alike (metrics,
PublicTest scores, the budget) are reduced or broadcast. Weights, optimizer and schedule are the same
on every rank, so ``resume.pt`` holds them once, with rank 0's random state, and resumes on any number
of ranks.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..checkpoint import atomic_write_bytes, atomic_write_text, git_commit, model_meta, save_checkpoint
from ..data import PRESETS, FaceSet, augment_batch, load_fer2013, mixup
from ..device import autocast, hardware_name, keep_freed_memory, pick_device, precision_name, set_threads
from ..eval.predict import predict_probs
from ..models import create_model, split_output
from . import distributed
from .config import TrainConfig
from .optim import EMA, Plateau, build_optimizer, lr_factor

LOG_FIELDS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "images_per_s"]


def data_hash(data: FaceSet) -> str:
    """A short hash of the training data's identity (names and labels), stored in checkpoints."""
    import hashlib

    h = hashlib.sha256("\n".join(data.names).encode())
    h.update(data.labels.numpy().tobytes())
    return h.hexdigest()[:16]


def stratified_subset(data: FaceSet, n: int, seed: int) -> FaceSet:
    """About ``n`` faces with the class proportions of ``data`` (for quick runs and tests)."""
    g = torch.Generator().manual_seed(seed)
    keep = []
    for c in range(len(data.classes)):
        idx = torch.nonzero(data.labels == c).flatten()
        k = max(1, round(n * len(idx) / len(data))) if len(idx) else 0
        keep.append(idx[torch.randperm(len(idx), generator=g)[:k]])
    return data.subset(torch.cat(keep).sort().values)


def train(
    cfg: TrainConfig,
    splits: dict[str, FaceSet] | None = None,
    resume: bool = False,
    on_epoch: Callable[[dict], None] | None = None,
    progress: bool = True,
    on_batch: Callable[[dict], None] | None = None,
) -> Path:
    """Train ``cfg.model``; returns the run folder. ``on_epoch`` receives each log row, ``on_batch``
    (for live progress in background jobs) ``{epoch, batch, batches, loss, acc}`` after each step."""
    # ---- setup -------------------------------------------------------------------------------
    ddp = int(os.environ.get("RANK", -1)) != -1  # started by torchrun: one process per rank
    if ddp:
        rank, world_size, device = distributed.setup(cfg.device)
    else:
        rank, world_size, device = 0, 1, pick_device(cfg.device)
    master = rank == 0  # the one process that shows progress, evaluates and writes files
    if cfg.sync_bn and ddp and device.type != "cuda":
        raise ValueError("sync_bn needs CUDA GPUs: torch's SyncBatchNorm does not run on the CPU")
    run_dir = Path(cfg.out) / cfg.name
    if master:
        run_dir.mkdir(parents=True, exist_ok=True)
    set_threads(cfg.threads or distributed.cpu_share())  # 0: every core, split between this machine's ranks
    keep_freed_memory()  # no page faults for the buffers every step frees and allocates again
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank

    # ---- data: uint8 tensors on the device -----------------------------------------------------
    splits = splits or load_fer2013(cfg.data)
    train_set, val_set = splits["Training"], splits["PublicTest"]
    if cfg.max_train_samples:
        train_set = stratified_subset(train_set, cfg.max_train_samples, cfg.seed)
    x_train, y_train = train_set.images.to(device), train_set.labels.to(device)
    n_train = len(train_set)
    aug = PRESETS[cfg.augment]

    # ---- model, optimizer, schedule ----------------------------------------------------------------
    model = create_model(cfg.model, **cfg.model_args).to(device, memory_format=torch.channels_last)
    in_cfg = model.default_cfg
    if cfg.init_from:  # fine-tuning: start from a checkpoint of the same architecture
        from ..checkpoint import load_checkpoint

        model.load_state_dict(load_checkpoint(cfg.init_from)[0].state_dict())
    head = head_modules(model) if cfg.freeze_backbone else []
    if head:
        model.requires_grad_(False)
        for m in head:
            m.requires_grad_(True)
    if cfg.sync_bn and ddp:  # BatchNorm statistics over the global batch, not each rank's share
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    optimizer = build_optimizer(model, cfg.optimizer, cfg.lr, cfg.weight_decay)
    steps_per_epoch = distributed.steps_per_epoch(n_train, cfg.batch_size, world_size)
    total_steps = cfg.epochs * steps_per_epoch
    warmup_steps = cfg.warmup_epochs * steps_per_epoch
    plateau = Plateau(cfg.plateau_factor, cfg.plateau_patience)
    ema = EMA(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp and device.type == "cuda")
    class_weights = None
    if cfg.class_weights:
        counts = torch.bincount(y_train, minlength=len(train_set.classes)).float().clamp(min=1)
        class_weights = (counts.sum() / (len(counts) * counts)).to(device)

    # ---- state, possibly resumed ---------------------------------------------------------------
    state = {
        "epoch": 0,
        "best_acc": -1.0,
        "best_epoch": 0,
        "bad_epochs": 0,
        "wall_s": 0.0,
        "history": [],
        "done": False,
    }
    resume_file = run_dir / "resume.pt"
    if resume and resume_file.is_file():
        saved = torch.load(resume_file, map_location="cpu", weights_only=True)
        if saved["config"]["model"] != cfg.model:
            raise ValueError(f"{resume_file} is a run of {saved['config']['model']}, not {cfg.model}")
        model.load_state_dict(saved["model"])
        fused = [g["fused"] for g in optimizer.param_groups]
        optimizer.load_state_dict(saved["optimizer"])
        for g, f in zip(optimizer.param_groups, fused, strict=True):  # a run saved before fused was used
            g["fused"] = f
        plateau.load_state_dict(saved["plateau"])
        if ema is not None and "ema" in saved:
            ema.model.load_state_dict(saved["ema"])
        torch.set_rng_state(saved["rng_cpu"])
        if device.type == "cuda" and "rng_cuda" in saved:
            torch.cuda.set_rng_state(saved["rng_cuda"], device)
        state = saved["state"]
    # DDP copies rank 0's weights to every rank and averages gradients; ``model`` stays the bare network
    net = (
        torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
        if ddp
        else model
    )
    if master:
        atomic_write_text(run_dir / "config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")
    hardware = hardware_name(device)
    meta_common = {
        "train_config": cfg.to_dict(),
        "hardware": f"{world_size} x {hardware}" if world_size > 1 else hardware,
        "precision": precision_name(device, cfg.amp),  # bf16 only where the CPU does it in hardware
        "git_commit": git_commit(),
        "data_hash": data_hash(train_set),
        "train_samples": n_train,
    }

    # ---- the loop -----------------------------------------------------------------------------
    session_start = time.time()
    last_epoch_s = 0.0
    while state["epoch"] < cfg.epochs and not state["done"]:
        epoch = state["epoch"]
        over = cfg.budget_minutes and (time.time() - session_start + last_epoch_s) / 60 > cfg.budget_minutes
        if distributed.any_rank(over):
            break  # the next epoch would not end within the budget: stop cleanly at this boundary
        t0 = time.time()
        model.train()
        if head:  # frozen backbone: keep its BatchNorm statistics and dropout as they were trained
            model.eval()
            for m in head:
                m.train()
        if rank > 0:  # its own augmentation draws, a pure function of (seed, epoch, rank): nothing to save
            torch.manual_seed(distributed.rank_seed(cfg.seed, epoch, rank))
        perm = distributed.broadcast_(torch.randperm(n_train, device=device))  # rank 0's shuffle everywhere
        loss_sum = correct = seen = 0.0
        bar = tqdm(
            range(steps_per_epoch),
            desc=f"{cfg.name} {epoch + 1}/{cfg.epochs}",
            leave=False,
            disable=not (progress and master),
            mininterval=2.0,
        )
        for i in bar:
            # learning rate for this step
            step = epoch * steps_per_epoch + i
            lr = cfg.lr * plateau.scale * lr_factor(cfg.schedule, step, total_steps, warmup_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            # a batch (this rank's share of the global batch): augment on the device
            batch = perm[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            idx = distributed.shard(batch, rank, world_size)
            share = len(idx) * world_size / len(batch)  # DDP averages over ranks: weigh by the faces each had
            x = augment_batch(x_train[idx], in_cfg.input_size, in_cfg.crop, aug, in_cfg.mean, in_cfg.std)
            x = x.contiguous(memory_format=torch.channels_last)
            y = y_train[idx]
            y_b, lam = y, 1.0
            if aug.mixup_alpha > 0:
                x, y, y_b, lam = mixup(x, y, aug.mixup_alpha)
            # forward, with auxiliary heads and the model's own penalties
            with autocast(device, cfg.amp):
                logits, aux = split_output(net(x))
            loss = mixed_cross_entropy(logits, y, y_b, lam, class_weights, cfg.label_smoothing)
            for weight, aux_logits in aux.values():
                loss = loss + weight * mixed_cross_entropy(aux_logits, y, y_b, lam, class_weights, cfg.label_smoothing)
            loss = loss + model.regularization_loss()
            # backward and step
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss * share).backward()
            if cfg.grad_clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            if ema is not None:
                ema.update(model)
            # running statistics
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(idx)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
            if on_batch is not None and master:
                done = {"epoch": epoch, "batch": i + 1, "batches": steps_per_epoch}
                on_batch({**done, "loss": loss_sum / seen, "acc": correct / seen})
        loss_sum, correct, seen = distributed.all_reduce_sum([loss_sum, correct, seen])  # over every rank
        train_s = time.time() - t0

        # evaluate on PublicTest (the selection split): rank 0 alone, then every rank gets its scores
        eval_model = ema.model if ema is not None else model
        val_loss = val_acc = 0.0
        if master:
            probs = predict_probs(eval_model, val_set.images, batch_size=cfg.eval_batch_size, amp=cfg.amp)
            val_loss = F.nll_loss(probs.clamp_min(1e-8).log(), val_set.labels).item()
            val_acc = (probs.argmax(1) == val_set.labels).float().mean().item()
        val_loss, val_acc = distributed.broadcast_floats([val_loss, val_acc])
        if cfg.schedule == "plateau":
            plateau.step(val_acc)
        last_epoch_s = time.time() - t0
        row = {
            "epoch": epoch + 1,
            "train_loss": round(loss_sum / seen, 5),
            "train_acc": round(correct / seen, 5),
            "val_loss": round(val_loss, 5),
            "val_acc": round(val_acc, 5),
            "lr": lr,
            "seconds": round(last_epoch_s, 1),
            "images_per_s": round(seen / train_s, 1),
        }
        state["history"].append(row)
        state["wall_s"] += last_epoch_s
        state["epoch"] = epoch + 1

        # best checkpoint by PublicTest accuracy, early stopping
        if val_acc > state["best_acc"]:
            state.update(best_acc=val_acc, best_epoch=epoch + 1, bad_epochs=0)
            if master:
                meta = model_meta(
                    eval_model,
                    **meta_common,
                    epochs=epoch + 1,
                    wall_time_s=round(state["wall_s"], 1),
                    metrics={"PublicTest_accuracy": val_acc, "PublicTest_loss": val_loss},
                )
                save_checkpoint(eval_model, run_dir / "best.safetensors", meta)
        else:
            state["bad_epochs"] += 1
            if cfg.early_stop_patience and state["bad_epochs"] >= cfg.early_stop_patience:
                state["done"] = True
        if state["epoch"] >= cfg.epochs:
            state["done"] = True

        # resume state and log, each written atomically, by rank 0 (the others hold the same state)
        if not master:
            continue
        saved = {
            "config": cfg.to_dict(),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "plateau": plateau.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "state": state,
        }
        if ema is not None:
            saved["ema"] = ema.model.state_dict()
        if device.type == "cuda":
            saved["rng_cuda"] = torch.cuda.get_rng_state(device)
        atomic_write_bytes(resume_file, lambda tmp, saved=saved: torch.save(saved, tmp))
        write_log(run_dir / "log.csv", state["history"])
        tqdm.write(f"{cfg.name} epoch {epoch + 1}: " + ", ".join(f"{k}={v}" for k, v in list(row.items())[1:]))
        if on_epoch is not None:
            on_epoch(row)
    distributed.barrier()  # every rank returns once the run folder is complete
    return run_dir


def head_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The classifier head for ``freeze_backbone``: the ``nn.Linear`` whose output is the model's logits.

    Found by running one blank face through the model (eval mode) and matching outputs, so it needs no
    per-model table and is not fooled by linears registered after the classifier (a spatial
    transformer's regressor, an auxiliary head): those count as backbone and stay frozen.
    """
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    outputs: dict[int, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda mod, _i, out: outputs.__setitem__(id(mod), out)) for m in linears]
    was_training = model.training
    size = model.default_cfg.input_size
    try:
        model.eval()
        with torch.no_grad():
            logits, _ = split_output(model(torch.zeros(1, 1, size, size, device=next(model.parameters()).device)))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    heads = [
        m
        for m in linears
        if id(m) in outputs and outputs[id(m)].shape == logits.shape and torch.equal(outputs[id(m)], logits)
    ]
    if not heads:
        raise ValueError(f"{type(model).__name__}: no nn.Linear produces the logits; no head to train alone")
    return heads[-1:]


def mixed_cross_entropy(
    logits: torch.Tensor,
    y: torch.Tensor,
    y_b: torch.Tensor,
    lam: float,
    weight: torch.Tensor | None,
    label_smoothing: float,
) -> torch.Tensor:
    """Cross-entropy in float32; with mixup (lam < 1) the lam-weighted sum over both label sets."""

    def ce(t: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), t, weight=weight, label_smoothing=label_smoothing)

    return lam * ce(y) + (1 - lam) * ce(y_b) if lam < 1 else ce(y)


def write_log(path: Path, history: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=LOG_FIELDS)
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(path, buf.getvalue())


def run_finished(run_dir: Path) -> bool:
    """True when the run folder's resume state says training ended (epochs done or early stop)."""
    f = Path(run_dir) / "resume.pt"
    return f.is_file() and bool(torch.load(f, map_location="cpu", weights_only=True)["state"]["done"])
