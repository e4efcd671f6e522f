"""Background training jobs whose whole state lives on disk, so any process can read or act on it.

Layout of the jobs folder (``FER_JOBS_DIR``, default ``runs/jobs/``)::

    state.lock          flock'ed around every read-modify-write of a job.json (queue, start, cancel, end)
    runner.lock         flock'ed by the one job process running; the kernel frees it when that process
                        dies, even by kill -9, so a stale lock cannot block the queue
    <job id>/job.json   the job: spec, state, pid, times, error, result (written atomically)
    <job id>/progress.json  written by the job process only: phase, epoch, batch, loss, history
    <job id>/log.txt    the job process's stdout and stderr (the page shows its tail)
    <job id>/run/       the training run folder (config.json, log.csv, best.safetensors, resume.pt)
    uploads/<id>/       the user's faces for one job: an uploaded zip extracted (fer_core.jobs.uploads), or a
                        snapshot of My faces (fer_core.jobs.my_faces), so a resumed job trains on the same faces
    my_faces/<class>/   the faces saved from the Upload and Webcam pages (``FER_MY_FACES`` moves it)

States: queued -> starting -> running -> finished | failed | cancelled. A job process is started with
``python -m fer_core.jobs run <job dir>`` in its own session (process group), so Cancel can end it and
everything it started with one ``killpg``, and so it outlives the app: restarting the dashboard shows
the job as it is. When a job ends, its process starts the next queued one, so the queue drains with no
page open. A job recorded as running whose process is gone (killed, out of memory, machine restart) is
marked failed with that reason by :meth:`JobRunner.refresh`, which every listing calls; refresh also
starts the oldest queued job when nothing runs and no process holds ``runner.lock``, so a queue whose
running job was killed with SIGKILL (which gave it no chance to start the next) still drains.
:meth:`JobRunner.retry` queues a failed or cancelled job again; its process continues from the run's
``resume.pt`` (written at every epoch boundary), so a killed job loses at most the epoch in progress.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..checkpoint import atomic_write_text

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
ACTIVE = ("starting", "running")
DONE = ("finished", "failed", "cancelled")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
NAME_RULE = "use 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit"
DATA_CHOICES = ("fer2013", "fer2013_balanced", "zip", "my_faces")
OWN_FACES = ("zip", "my_faces")  # the user's labelled faces in class folders, part held out to compare
_CHILDREN: dict[int, subprocess.Popen] = {}  # processes this process started, polled so none stays a zombie


class JobError(ValueError):
    """A job the runner refuses (bad settings, unknown job, duplicate name); the message says why."""


def jobs_root() -> Path:
    return Path(os.environ.get("FER_JOBS_DIR", PACKAGE_ROOT / "runs" / "jobs"))


@dataclass
class JobSpec:
    """What to train. ``kind="finetune"`` starts from ``base`` (a checkpoint) and registers the result
    as a user model; ``kind="sweep"`` trains ``model`` from scratch as one cell of a grid, a plain run."""

    name: str
    kind: str = "finetune"
    base: str = ""  # fine-tune: path of the base checkpoint (.safetensors), shipped or user-made
    model: str = ""  # sweep: architecture name; fine-tune: filled from the base checkpoint
    model_args: dict[str, Any] = field(default_factory=dict)
    data: str = "fer2013"  # fer2013 | fer2013_balanced | zip | my_faces
    data_path: str = ""  # FER2013 folder or csv (default FER2013_DIR); zip, my_faces: the job's class folders
    per_class: int = 500  # fer2013_balanced: faces per class (fewer where a class has fewer)
    holdout: float = 0.2  # zip, my_faces: fraction of each class held out for the before/after comparison
    epochs: int = 3
    lr: float = 1e-4
    batch_size: int = 64
    optimizer: str = "adamw"
    schedule: str = "cosine"
    freeze_backbone: bool = False
    augment: str = "light"
    max_train_samples: int = 0  # sweep: train on a stratified subset of this size; 0: all
    threads: int = 0  # CPU threads for the job; 0: all cores
    register: bool = True  # add the result to the user models
    options: dict[str, Any] = field(default_factory=dict)  # evaluation jobs' settings (fer_core.eval.background)

    def validate(self) -> None:
        """Raise :class:`JobError` for any setting outside what the page offers."""
        from ..data import PRESETS
        from ..eval.background import EVAL_KINDS, validate_eval_spec
        from ..models import list_models

        if self.kind in EVAL_KINDS:  # evaluation jobs (the Robustness page) train nothing: their own checks
            problems = validate_eval_spec(self) + [f"name {self.name!r}: {NAME_RULE}"] * (not NAME_RE.match(self.name))
            if problems:
                raise JobError("; ".join(problems))
            return
        problems = []
        if not NAME_RE.match(self.name):
            problems.append(f"name {self.name!r}: {NAME_RULE}")
        if self.kind not in ("finetune", "sweep"):
            problems.append(f"kind {self.kind!r}: finetune or sweep")
        if self.kind == "finetune" and not Path(self.base).is_file():
            problems.append(f"base checkpoint {self.base!r} does not exist")
        fer_path = self.data_path or os.environ.get("FER2013_DIR", "")
        if self.data not in OWN_FACES and not (fer_path and Path(fer_path).exists()):
            problems.append("no FER2013 data: set the FER2013 folder in the sidebar (or FER2013_DIR)")
        if self.data == "zip" and not Path(self.data_path).is_dir():
            problems.append("no extracted faces for data 'zip': upload a zip of class folders first")
        if self.data == "my_faces" and not Path(self.data_path).is_dir():
            problems.append("no snapshot of My faces for data 'my_faces': save faces on the Upload or Webcam page")
        if self.kind == "sweep" and self.model not in list_models():
            problems.append(f"model {self.model!r} is not in the zoo")
        if self.data not in DATA_CHOICES:
            problems.append(f"data {self.data!r}: one of {', '.join(DATA_CHOICES)}")
        if not _int_in(self.epochs, 1, 20):
            problems.append(f"epochs {self.epochs!r}: a whole number from 1 to 20")
        if not (_number(self.lr) and math.isfinite(self.lr) and 1e-6 <= self.lr <= 1.0):
            problems.append(f"learning rate {self.lr}: 1e-6 to 1")
        if not _int_in(self.batch_size, 1, 1024):
            problems.append(f"batch size {self.batch_size!r}: a whole number from 1 to 1024")
        if not _int_in(self.per_class, 10, 10_000):
            problems.append(f"faces per class {self.per_class!r}: 10 to 10,000")
        if not (_number(self.holdout) and 0.05 <= self.holdout <= 0.5):
            problems.append(f"held-out fraction {self.holdout}: 0.05 to 0.5")
        if not _int_in(self.threads, 0, 1024):
            problems.append(f"threads {self.threads!r}: 0 (every core) or more")
        if not _int_in(self.max_train_samples, 0, 10**9):
            problems.append(f"training samples {self.max_train_samples!r}: 0 (all) or more")
        if self.optimizer not in ("adamw", "adam", "sgd"):
            problems.append(f"optimizer {self.optimizer!r}: adamw, adam or sgd")
        if self.schedule not in ("cosine", "constant", "plateau", "onecycle"):
            problems.append(f"schedule {self.schedule!r}: cosine, constant, plateau or onecycle")
        if self.augment not in PRESETS:
            problems.append(f"augmentation {self.augment!r}: one of {', '.join(PRESETS)}")
        if problems:
            raise JobError("; ".join(problems))


def _number(v: object) -> bool:
    """A real number, not a bool or a string (a spec read from JSON or a form may hold either)."""
    return isinstance(v, int | float) and not isinstance(v, bool)


def _int_in(v: object, lo: int, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


@dataclass
class Job:
    """A job as read from disk: ``job.json`` plus the job process's ``progress.json``."""

    id: str
    folder: Path
    state: str
    spec: JobSpec
    created: float
    started: float | None = None
    ended: float | None = None
    pid: int | None = None
    pid_start: str | None = None  # /proc start time of pid, so a recycled pid is not mistaken for it
    error: str | None = None
    result: dict[str, Any] | None = None
    queued_at: float | None = None  # when it last joined the queue (a retried job queues behind the others)
    retries: int = 0
    progress: dict[str, Any] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        return self.folder / "run"

    @property
    def retryable(self) -> bool:
        """Failed or cancelled: :meth:`JobRunner.retry` can queue it again."""
        return self.state in ("failed", "cancelled")

    @property
    def resumable(self) -> bool:
        """Retryable with at least one finished epoch saved: a retry continues from there."""
        return self.retryable and (self.run_dir / "resume.pt").is_file()

    @property
    def fraction(self) -> float:
        """Share of the training batches done, 0 to 1."""
        p = self.progress
        total = p.get("epochs", 0) * p.get("batches", 0)
        if self.state == "finished":
            return 1.0
        return min(1.0, (p.get("epoch", 0) * p.get("batches", 0) + p.get("batch", 0)) / total) if total else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left in training, from the pace so far (None before the first batch or when done).
        A resumed job counts its pace from where it resumed (``start_fraction``), not from zero."""
        start, f = self.progress.get("train_started"), self.fraction
        f0 = self.progress.get("start_fraction", 0.0)
        if self.state not in ACTIVE or not start or f <= f0 or f >= 1:
            return None
        return (time.time() - start) * (1 - f) / (f - f0)

    def log_tail(self, lines: int = 20) -> str:
        log = self.folder / "log.txt"
        if not log.is_file():
            return ""
        with open(log, "rb") as f:
            f.seek(max(0, log.stat().st_size - 16_000))
            text = f.read().decode(errors="replace").replace("\r", "\n")
        return "\n".join([ln for ln in text.splitlines() if ln.strip()][-lines:])

    def record(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("folder", "progress")}


def _read_job(folder: Path) -> Job | None:
    try:
        raw = json.loads((folder / "job.json").read_text())
    except (OSError, ValueError):
        return None  # not a job folder (or one being created)
    raw["spec"] = JobSpec(**raw["spec"])
    job = Job(folder=folder, **raw)
    try:
        job.progress = json.loads((folder / "progress.json").read_text())
    except (OSError, ValueError):
        job.progress = {}
    return job


def write_job(job: Job) -> None:
    atomic_write_text(job.folder / "job.json", json.dumps(job.record(), indent=1, default=str) + "\n")


def _proc_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (None if there is no such live process; zombies count as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        if sys.platform.startswith("linux"):
            return None
        try:  # no /proc: existence only
            os.kill(pid, 0)
            return "?"
        except OSError:
            return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def _names_held(jobs: list[Job]) -> set[str]:
    """Names a new job may not take: those of jobs that are queued, running or finished (a failed or
    cancelled job gives its name back)."""
    return {j.spec.name for j in jobs if j.state not in ("failed", "cancelled")}


def process_alive(pid: int | None, start: str | None) -> bool:
    if not pid:
        return False
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:  # ours and ended: reaped here
        _CHILDREN.pop(pid, None)
        return False
    now = _proc_start(pid)
    return now is not None and (start in (None, "?") or now == start)


def _same_work(a: JobSpec, b: JobSpec) -> bool:
    """Whether two specs would compute the same thing (names aside)."""
    return (a.kind, a.base, a.data_path, a.options) == (b.kind, b.base, b.data_path, b.options)


class JobRunner:
    """Submit, list, cancel and recover jobs in one jobs folder. Cheap to create: it holds no state,
    so every page run, CLI call and job process can make its own."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else jobs_root()
        self.root.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """The state lock: one writer of job.json files at a time, across processes."""
        with open(self.root / "state.lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    # ---- reading --------------------------------------------------------------------------------
    def _all(self) -> list[Job]:
        jobs = [j for d in self.root.iterdir() if d.is_dir() and (j := _read_job(d)) is not None]  # skips uploads/
        return sorted(jobs, key=lambda j: (j.created, j.id))

    def list(self) -> list[Job]:
        """Every job, oldest first, after recovering dead ones and starting a queued one if none runs."""
        self.refresh()
        return self._all()

    def get(self, job_id: str) -> Job:
        job = _read_job(self.root / job_id) if re.fullmatch(r"[\w.-]+", job_id) else None
        if job is None:
            raise JobError(f"no job {job_id!r} in {self.root}")
        return job

    # ---- acting ---------------------------------------------------------------------------------
    def extract_upload(self, source: str | Path | bytes) -> tuple[Path, Any]:
        """Check and extract a zip of class folders into ``uploads/<id>/``; returns the folder (for
        ``JobSpec(data="zip", data_path=...)``) and the :class:`~fer_core.jobs.uploads.UploadSummary`."""
        from .uploads import extract_faces_zip

        dest = self.root / "uploads" / uuid.uuid4().hex[:12]
        try:
            return dest, extract_faces_zip(source, dest)
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise

    def snapshot_my_faces(self, faces_root: str | Path | None = None) -> tuple[Path, Any]:
        """Check My faces and copy them into ``uploads/<id>/`` for one job (``JobSpec(data="my_faces",
        data_path=...)``); returns the folder and an :class:`~fer_core.jobs.uploads.UploadSummary`."""
        from .my_faces import snapshot_faces

        dest = self.root / "uploads" / uuid.uuid4().hex[:12]
        return dest, snapshot_faces(dest, faces_root)

    def submit(self, spec: JobSpec, job_id: str | None = None) -> Job:
        """Queue a job (validated first) and start it if no other job runs; ``job.state`` says which."""
        spec.validate()
        if spec.kind == "finetune":
            from ..checkpoint import read_meta

            meta = read_meta(spec.base)
            spec.model, spec.model_args = meta["model"], meta.get("model_args", {})
        with self.locked():
            jobs = self._all()
            if not spec.register:  # an evaluation: the same one already pending would only run twice
                same = next((j for j in jobs if j.state not in DONE and _same_work(j.spec, spec)), None)
                if same is not None:
                    raise JobError(f"{spec.name}: the same evaluation is already {same.state} (job {same.id})")
            if spec.register and spec.name in _names_held(jobs):
                raise JobError(f"a job named {spec.name!r} already exists: choose another name")
            from .user_models import name_taken

            if spec.register and name_taken(spec.name):
                raise JobError(f"a shipped or user model is already named {spec.name!r}: choose another name")
            job_id = job_id or f"{time.strftime('%Y%m%d-%H%M%S')}-{spec.name}-{uuid.uuid4().hex[:4]}"
            now = time.time()
            job = Job(id=job_id, folder=self.root / job_id, state="queued", spec=spec, created=now, queued_at=now)
            job.folder.mkdir(parents=True)
            write_job(job)
        self.refresh()
        return self.get(job_id)

    def cancel(self, job_id: str, grace_s: float = 10.0) -> Job:
        """Cancel a queued job, or stop a running one: SIGTERM to its process group (the job stops at
        once, cleaning up half-written files), SIGKILL after ``grace_s``. Then start the next queued."""
        with self.locked():
            job = self.get(job_id)
            if job.state in DONE:
                return job
            pid, start = job.pid, job.pid_start
            job.state, job.ended, job.error = "cancelled", time.time(), "cancelled by the user"
            write_job(job)
        if pid and process_alive(pid, start):
            _kill_group(pid, grace_s, start)
        self.refresh()
        return self.get(job_id)

    def retry(self, job_id: str) -> Job:
        """Queue a failed or cancelled job again (behind the jobs already queued) and start it if nothing
        runs. Its process continues from the run's ``resume.pt`` when one was saved (see
        :attr:`Job.resumable`): weights, optimizer, schedule and random state as they were at the last
        finished epoch, so at most the epoch in progress is lost."""
        with self.locked():
            job = self.get(job_id)
            if not job.retryable:
                raise JobError(f"{job.spec.name} is {job.state}: only a failed or cancelled job can be retried")
            try:
                job.spec.validate()  # its base model or data may have been deleted since
            except JobError as exc:
                raise JobError(f"{job.spec.name} cannot be retried: {exc}") from None
            others = [j for j in self._all() if j.id != job.id]
            if job.spec.register and job.spec.name in _names_held(others):
                raise JobError(f"a job named {job.spec.name!r} was launched since: launch this one under another name")
            job.state, job.queued_at, job.retries = "queued", time.time(), job.retries + 1
            job.pid = job.pid_start = job.ended = job.error = job.result = None
            write_job(job)
        self.refresh()
        return self.get(job_id)

    def refresh(self) -> None:
        """Recover and advance: jobs whose process is gone are marked failed (with the log's last
        line), then the oldest queued job starts if nothing runs and no job process holds ``runner.lock``."""
        with self.locked():
            jobs = self._all()
            dead = [j for j in jobs if j.state in ACTIVE and not process_alive(j.pid, j.pid_start)]
            for job in dead:
                self._mark_dead(job)
            if any(j.state in ACTIVE for j in jobs):
                return
            queued = sorted((j for j in jobs if j.state == "queued"), key=lambda j: (j.queued_at or j.created, j.id))
            # a process killed with SIGKILL shows as gone (its main thread a zombie) a moment before its
            # other threads have exited and the kernel has dropped its lock: give it that moment
            if queued and self._runner_lock_free(wait_s=3.0 if dead else 0.0):
                self._start(queued[0])

    def _mark_dead(self, job: Job) -> None:
        """A job whose process vanished: failed, with the reason, the log's last line and what to do."""
        last = job.log_tail(1)
        job.state, job.ended = "failed", time.time()
        job.error = "the job's process ended without reporting a result (killed, out of memory or " + (
            f"the machine restarted); last log line: {last}" if last else "the machine restarted)"
        )
        if job.resumable:
            job.error += "; Resume continues from the last finished epoch"
        write_job(job)
        from ..zoo import user_models_root
        from .user_models import STAGING

        # a model it was registering when it died: never in the zoo (staged apart), removed here
        shutil.rmtree(user_models_root() / STAGING / f"{job.spec.name}-{job.pid}", ignore_errors=True)

    def _runner_lock_free(self, wait_s: float = 0.0) -> bool:
        """No job process holds ``runner.lock`` (polled for up to ``wait_s``). The kernel drops the lock
        with its holder, so a job killed with SIGKILL never blocks the queue, while one still cleaning
        up after a cancel (its job.json already says cancelled) is not joined by a second training process."""
        deadline = time.time() + wait_s
        with open(self.root / "runner.lock", "a") as f:
            while True:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    if time.time() >= deadline:
                        return False
                    time.sleep(0.05)
                    continue
                fcntl.flock(f, fcntl.LOCK_UN)
                return True

    def _start(self, job: Job) -> None:
        """Launch the job's process (state lock held): its own session, output to log.txt."""
        path = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}  # the log tail shows lines as they come
        with open(job.folder / "log.txt", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "fer_core.jobs", "run", str(job.folder)],
                cwd=PACKAGE_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _CHILDREN[proc.pid] = proc
        job.state, job.started, job.pid, job.pid_start = "starting", time.time(), proc.pid, _proc_start(proc.pid)
        write_job(job)

    def wait(self, job_id: str, timeout: float = 120.0, poll_s: float = 0.2) -> Job:
        """Block until the job is finished, failed or cancelled (for scripts and tests)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            job = self.get(job_id)
            if job.state in DONE:
                return job
            self.refresh()
            time.sleep(poll_s)
        raise TimeoutError(f"job {job_id} still {self.get(job_id).state} after {timeout:.0f} s")


def _kill_group(pid: int, grace_s: float, start: str | None) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.time() + grace_s
    while time.time() < deadline and process_alive(pid, start):
        time.sleep(0.1)
    with suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)  # the group, so nothing the job started outlives it
    child = _CHILDREN.pop(pid, None)
    if child is not None:  # ours: reap it, so no zombie stays behind
        with suppress(subprocess.TimeoutExpired):
            child.wait(5)
