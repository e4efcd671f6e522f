"""Training runs for the dashboard: every run folder (``runs/<name>/``) and every shipped checkpoint's
epoch log, with its configuration, as tidy tables."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass
class RunInfo:
    name: str
    folder: Path
    config: dict
    log: pd.DataFrame  # columns of fer_core.train.loop.LOG_FIELDS
    source: str  # "run" (a runs/ folder) or "shipped" (a checkpoints/ folder)


def _read(folder: Path, source: str, name: str) -> RunInfo | None:
    log_file = folder / "log.csv"
    if not log_file.is_file():
        return None
    try:
        log = pd.read_csv(log_file)
        if source == "run":
            config = json.loads((folder / "config.json").read_text())
        else:
            config = json.loads((folder / "model.json").read_text()).get("train_config", {})
    except (OSError, ValueError, pd.errors.ParserError):
        return None  # a half-written or foreign folder is not a run
    if log.empty or "epoch" not in log:
        return None
    return RunInfo(name if source == "run" else f"{name} (shipped)", folder, config, log, source)


def list_runs(*roots: str | Path) -> list[RunInfo]:
    """Runs under each root, at any depth, root by root in the order given: folders with ``log.csv``
    beside ``config.json`` (a run) or ``model.json`` (a shipped checkpoint). A run is named by its path
    below the root. A root that lies inside another (``runs/jobs`` inside ``runs``) is listed in its own
    place only, so a caller decides where background jobs come (the Training page: own runs, then the
    shipped zoo, then jobs and sweeps)."""
    folders = [Path(r) for r in roots if Path(r).is_dir()]
    resolved = [f.resolve() for f in folders]
    out = []
    for root, real in zip(folders, resolved, strict=True):
        nested = [o for o in resolved if o != real and o.is_relative_to(real)]
        for log in sorted(root.rglob("log.csv")):
            folder = log.parent
            if nested and any(folder.resolve().is_relative_to(o) for o in nested):
                continue
            source = "run" if (folder / "config.json").is_file() else "shipped"
            info = _read(folder, source, _run_name(folder, root))
            if info is not None:
                out.append(info)
    return out


def _run_name(folder: Path, root: Path) -> str:
    """A run's path below its root; a background job's run (``<job id>/run``) by the job's name instead."""
    job_file = folder.parent / "job.json"
    if folder.name == "run" and job_file.is_file():
        try:
            return f"{json.loads(job_file.read_text())['spec']['name']} (job {folder.parent.name[:15]})"
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return folder.relative_to(root).as_posix()


def runs_table(runs: list[RunInfo]) -> pd.DataFrame:
    """One row per run: its recipe and its best PublicTest accuracy, best run first (how a sweep is read)."""
    rows = []
    for r in runs:
        c = r.config
        best = r.log.loc[r.log["val_acc"].idxmax()]
        rows.append(
            {
                "run": r.name,
                "model": c.get("model"),
                "optimizer": c.get("optimizer"),
                "lr": c.get("lr"),
                "schedule": c.get("schedule"),
                "batch_size": c.get("batch_size"),
                "augment": c.get("augment"),
                "epochs_run": int(r.log["epoch"].max()),
                "epochs_planned": c.get("epochs"),
                "best_val_acc": float(best["val_acc"]),
                "best_epoch": int(best["epoch"]),
                "hours": round(float(r.log["seconds"].sum()) / 3600, 2),
            }
        )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    return table.sort_values("best_val_acc", ascending=False, kind="stable").reset_index(drop=True)


def optimizer_schedule_grid(runs: list[RunInfo], model: str | None = None) -> pd.DataFrame:
    """The VGGNet paper's tuning study from real runs: best PublicTest accuracy per optimizer x schedule."""
    table = runs_table(runs)
    if table.empty:
        return table
    if model is not None:
        table = table[table["model"] == model]
    return table.pivot_table(index="optimizer", columns="schedule", values="best_val_acc", aggfunc="max")
