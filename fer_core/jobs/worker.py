"""The body of one job, run in its own process by ``python -m fer_core.jobs run <job dir>``.

Load the data -> score the base model -> :func:`fer_core.train.train` (the loop ``train_all.py`` uses)
-> score the best checkpoint -> register it as a user model -> start the next queued job. Progress
goes to ``progress.json`` (only this process writes it); state changes go to ``job.json`` under the
runner's state lock, and never overwrite a cancellation. A retried job whose run saved ``resume.pt``
continues from it (the loop's exact resume), keeping the epochs and curves it had.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import json
import os
import shutil
import signal
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import atomic_write_text
from .runner import OWN_FACES, JobRunner, _read_job, write_job

MAX_STEPS = 400  # points of the live per-batch curves kept in progress.json (thinned, so it stays small)


class Cancelled(BaseException):  # noqa: N818 (a signal, not an error)
    """Raised by SIGTERM so ``finally`` blocks remove half-written files before the process exits."""


def balanced_subset(data: Any, per_class: int, seed: int) -> Any:
    """Up to ``per_class`` faces of every class (all of a class that has fewer)."""
    g = torch.Generator().manual_seed(seed)
    keep = []
    for c in range(len(data.classes)):
        idx = torch.nonzero(data.labels == c).flatten()
        keep.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    return data.subset(torch.cat(keep).sort().values)


def holdout_split(data: Any, fraction: float, seed: int) -> tuple[Any, Any]:
    """(train, held-out): ``fraction`` of every class held out, at least one face per class present."""
    g = torch.Generator().manual_seed(seed)
    train_idx, held_idx = [], []
    for c in range(len(data.classes)):
        idx = torch.nonzero(data.labels == c).flatten()
        if len(idx) == 0:
            continue
        idx = idx[torch.randperm(len(idx), generator=g)]
        k = max(1, round(fraction * len(idx)))
        held_idx.append(idx[:k])
        train_idx.append(idx[k:])
    return data.subset(torch.cat(train_idx).sort().values), data.subset(torch.cat(held_idx).sort().values)


def load_job_data(spec: Any) -> tuple[dict[str, Any], str]:
    """The splits to train on (``Training``, ``PublicTest`` = selection and comparison split) and the
    comparison split's name as users should read it."""
    from ..data import load_class_folders, load_fer2013

    if spec.data in OWN_FACES:  # a zip's class folders, or a snapshot of My faces: the same layout
        faces = load_class_folders(spec.data_path)
        train_set, held = holdout_split(faces, spec.holdout, seed=0)
        return {"Training": train_set, "PublicTest": held}, f"held-out {round(100 * spec.holdout)}% of your faces"
    splits = load_fer2013(spec.data_path or None)
    if spec.data == "fer2013_balanced":
        splits = {**splits, "Training": balanced_subset(splits["Training"], spec.per_class, seed=0)}
    return splits, "PublicTest"


def score(weights: Path, data: Any) -> dict[str, Any]:
    """Accuracy, macro-F1 and the confusion matrix of a checkpoint on one split (single centre crop)."""
    from ..checkpoint import load_checkpoint
    from ..eval import classification_metrics, predict_probs

    model, _ = load_checkpoint(weights)
    probs = predict_probs(model, data.images).numpy()
    m = classification_metrics(probs, data.labels.numpy(), data.classes)
    return {k: m[k] for k in ("n", "accuracy", "macro_f1", "confusion_matrix")}


def _number(text: str) -> float | int | str:
    """A log.csv cell as the loop wrote it: an int (epoch), a float, or the text itself."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


class Progress:
    """Writes ``progress.json`` at most every ``every_s`` seconds (and at phase changes)."""

    def __init__(self, folder: Path, every_s: float = 0.5) -> None:
        self.file, self.every_s, self.last = folder / "progress.json", every_s, 0.0
        self.data: dict[str, Any] = {"phase": "starting", "history": [], "steps": []}
        self.slow_s = float(os.environ.get("FER_JOBS_SLOW_BATCH_S", "0"))  # tests: time to watch and cancel

    def update(self, force: bool = False, **fields: Any) -> None:
        if fields.get("phase", self.data["phase"]) != self.data["phase"]:
            print(f"[{time.strftime('%H:%M:%S')}] {fields['phase']}", flush=True)  # the log tail the page shows
        self.data.update(fields)
        if force or time.time() - self.last >= self.every_s:
            atomic_write_text(self.file, json.dumps(self.data, default=float))
            self.last = time.time()

    def on_batch(self, b: dict) -> None:
        """Progress, and a point of the live training curves (running loss and accuracy of the epoch so
        far, at fractional epoch ``x``); every other point is dropped when there are too many."""
        if self.slow_s:
            time.sleep(self.slow_s)
        steps = self.data["steps"]
        steps.append({"x": b["epoch"] + b["batch"] / b["batches"], "loss": b["loss"], "acc": b["acc"]})
        if len(steps) > MAX_STEPS:
            self.data["steps"] = steps[1::2]
        self.update(**b)

    def resume_from(self, run_dir: Path, epochs: int) -> int:
        """Carry a resumed run's finished epochs (its ``log.csv``) and their curve points over; returns
        how many epochs are done."""
        with open(run_dir / "log.csv") as f:
            history = [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]
        try:
            old = json.loads(self.file.read_text()).get("steps", [])
        except (OSError, ValueError):
            old = []
        done = len(history)
        self.data.update(
            history=history,
            steps=[p for p in old if p["x"] <= done],
            epoch=done,
            batch=0,
            start_fraction=done / epochs,
        )
        return done

    def on_epoch(self, row: dict) -> None:
        self.data["history"].append(row)
        self.update(force=True, epoch=row["epoch"], batch=0)


def set_state(runner: JobRunner, folder: Path, **fields: Any) -> bool:
    """Update job.json unless the job was cancelled meanwhile; returns False if it was."""
    with runner.locked():
        job = _read_job(folder)
        if job is None or job.state == "cancelled":
            return False
        for k, v in fields.items():
            setattr(job, k, v)
        write_job(job)
        return True


def train_job(job: Any, folder: Path, progress: Progress) -> dict[str, Any]:
    """A fine-tune or sweep job's work: load the data, score the base, train, score, register."""
    from ..train import TrainConfig, train

    spec = job.spec
    progress.update(force=True, phase="loading data", epochs=spec.epochs)
    splits, eval_name = load_job_data(spec)
    result: dict[str, Any] = {"eval_split": eval_name, "train_faces": len(splits["Training"])}
    if spec.kind == "finetune":
        progress.update(force=True, phase="scoring the base model")
        result["before"] = score(Path(spec.base), splits["PublicTest"])
    cfg = TrainConfig.from_recipe(
        spec.model,
        model_args=spec.model_args,
        epochs=spec.epochs,
        lr=spec.lr,
        batch_size=spec.batch_size,
        optimizer=spec.optimizer,
        schedule=spec.schedule,
        augment=spec.augment,
        warmup_epochs=0 if spec.kind == "finetune" else min(1, spec.epochs - 1),
        early_stop_patience=0,
        out=str(folder),
        run_name="run",
        threads=spec.threads,
        max_train_samples=spec.max_train_samples,
        init_from=spec.base if spec.kind == "finetune" else "",
        freeze_backbone=spec.freeze_backbone,
    )
    resume = (folder / "run" / "resume.pt").is_file() and (folder / "run" / "log.csv").is_file()
    if resume:
        done = progress.resume_from(folder / "run", spec.epochs)
        print(f"resuming from resume.pt: {done} of {spec.epochs} epochs already done", flush=True)
    progress.update(force=True, phase="training", train_started=time.time())
    run_dir = train(cfg, splits, resume=resume, on_epoch=progress.on_epoch, on_batch=progress.on_batch, progress=False)
    progress.update(force=True, phase="scoring the new model")
    result["after"] = score(run_dir / "best.safetensors", splits["PublicTest"])
    if spec.register:
        progress.update(force=True, phase="registering the model")
        result["model"] = register(run_dir, spec, job.id, result, splits)
    return result


def run_job(folder: str | Path) -> int:
    """Run the job in ``folder`` to its end; exit status 0 unless it failed."""
    from ..eval.background import EVAL_KINDS, run_eval_job
    from .runner import _proc_start

    folder = Path(folder).resolve()
    runner = JobRunner(folder.parent)
    job = _read_job(folder)
    if job is None or job.state not in ("queued", "starting"):
        return 0  # cancelled before it started, or started twice
    lock = open(runner.root / "runner.lock", "a")  # noqa: SIM115 (held for the life of the process)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # another job process runs: back to the queue, it will start us
        set_state(runner, folder, state="queued", pid=None, pid_start=None)
        return 0
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(Cancelled()))
    pid = os.getpid()
    if not set_state(runner, folder, state="running", pid=pid, pid_start=_proc_start(pid), started=time.time()):
        return 0
    spec, progress, staged = job.spec, Progress(folder), None
    status = 0
    try:
        evaluation = spec.kind in EVAL_KINDS  # the Robustness page's jobs: no training (fer_core.eval.background)
        result = run_eval_job(spec, progress.update) if evaluation else train_job(job, folder, progress)
        progress.update(force=True, phase="finished")
        set_state(runner, folder, state="finished", ended=time.time(), result=result)
    except Cancelled:
        print("cancelled by the user", flush=True)
        progress.update(force=True, phase="cancelled")
        set_state(runner, folder, state="cancelled", ended=time.time(), error="cancelled by the user")
    except Exception as exc:  # noqa: BLE001 (any failure is the job's result, reported to the user)
        traceback.print_exc()
        error = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            error = f"the disk is full ({exc.filename or exc}): free some space, then Resume the job"
        with contextlib.suppress(OSError):  # a full disk may refuse this too; job.json below says it all
            progress.update(force=True, phase="failed")
        set_state(runner, folder, state="failed", ended=time.time(), error=error)
        status = 1
    finally:
        if staged is not None:
            shutil.rmtree(staged, ignore_errors=True)
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    JobRunner(runner.root).refresh()  # start the next queued job, page open or not
    return status


def register(run_dir: Path, spec: Any, job_id: str, result: dict, splits: dict[str, Any]) -> str:
    """Copy the run's best checkpoint into the user models (staged, then renamed into place)."""
    from ..checkpoint import load_checkpoint, save_checkpoint
    from ..eval import evaluate_model, write_report
    from .user_models import publish, published_by, staging_dir

    if (done := published_by(job_id)) is not None:
        return done
    model, meta = load_checkpoint(run_dir / "best.safetensors")
    meta.update(
        origin="user",
        name=spec.name,
        job=job_id,
        base=spec.base,
        finetune={k: getattr(spec, k) for k in ("data", "epochs", "lr", "batch_size", "freeze_backbone", "augment")},
        comparison={"split": result["eval_split"], "before": result.get("before"), "after": result["after"]},
    )
    staged = staging_dir(spec.name)
    try:
        save_checkpoint(model, staged / "model.safetensors", meta)
        shutil.copy2(run_dir / "log.csv", staged / "log.csv")
        if spec.data not in OWN_FACES:  # FER2013 splits: a full report, so every page can use the model
            report, arrays = evaluate_model(model, splits, ttas=("none", "flip"))
            report.update(model=meta["model"], epochs=meta.get("epochs"), weights="model.safetensors")
            write_report(staged, report, arrays)
        return publish(staged, spec.name).name
    finally:
        shutil.rmtree(staged, ignore_errors=True)
