"""The background job runner on the mini FER2013 with tiny models: a job finishes and registers its
model, cancel stops the process, a failing job says why, state survives a new runner, the queue drains
by itself, a killed job is recovered as failed, the queue goes on after a SIGKILL and a retried job
resumes from its last finished epoch; bad zips and out-of-range settings are refused; My faces (faces
saved from the Upload and Webcam pages) are stored safely and fine-tuned on."""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import signal
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from conftest import MINI_FOLDER, ROOT, stop_jobs
from fer_core.jobs import (
    JobError,
    JobRunner,
    JobSpec,
    UploadError,
    delete_class,
    delete_face,
    extract_faces_zip,
    face_counts,
    face_source,
    list_faces,
    my_faces_root,
    save_face,
    sweep_specs,
)
from fer_core.jobs.runner import process_alive
from fer_core.jobs.user_models import delete_user_model, rename_user_model
from fer_core.zoo import list_zoo

pytestmark = pytest.mark.slow
FACES = sorted(MINI_FOLDER.rglob("*.jpg"))


@pytest.fixture
def env(monkeypatch, tmp_path, zoo_root):
    """Isolated jobs and user-model folders; job processes use one thread; nothing left running after."""
    monkeypatch.setenv("FER_JOBS_DIR", str(tmp_path / "jobs"))
    monkeypatch.setenv("FER_USER_MODELS", str(tmp_path / "user_models"))
    monkeypatch.setenv("FER_CHECKPOINTS", str(zoo_root))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("FER_JOBS_SLOW_BATCH_S", raising=False)
    runner = JobRunner()
    yield runner
    stop_jobs(runner)


def spec(zoo_root: Path, name: str = "mine", **kw) -> JobSpec:
    base = str(zoo_root / "alpha" / "model.safetensors")
    return JobSpec(
        **{"name": name, "base": base, "epochs": 1, "batch_size": 8, "threads": 1, "data_path": str(MINI_FOLDER), **kw}
    )


def wait_for(runner: JobRunner, job_id: str, cond, timeout: float = 60):  # noqa: ANN001
    """Poll job.json only (no refresh): what another process sees without acting."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = runner.get(job_id)
        if cond(job):
            return job
        time.sleep(0.1)
    raise AssertionError(f"{job_id}: still {runner.get(job_id).state} ({runner.get(job_id).log_tail()})")


def test_finetune_job_finishes_and_registers_a_user_model(env, zoo_root):
    shipped = zoo_root / "alpha" / "model.safetensors"
    shipped_hash = hashlib.sha256(shipped.read_bytes()).hexdigest()
    job = env.submit(spec(zoo_root))
    assert job.state == "starting"
    job = env.wait(job.id, timeout=90)
    assert job.state == "finished", job.error
    r = job.result
    assert r["eval_split"] == "PublicTest" and r["model"] == "mine"
    for key in ("before", "after"):
        assert r[key]["n"] == 14 and len(r[key]["confusion_matrix"]) == 7 and 0 <= r[key]["accuracy"] <= 1
    assert len(job.progress["history"]) == 1 and job.fraction == 1.0
    steps = job.progress["steps"]  # the live per-batch curve points
    assert len(steps) == job.progress["batches"] and steps[-1]["x"] == 1.0 and 0 <= steps[-1]["acc"] <= 1
    assert "epoch 1" in job.log_tail()
    wait_for(env, job.id, lambda j: not process_alive(j.pid, j.pid_start), timeout=10)  # it exits after reporting
    # in the zoo as a user model, with a report; the shipped checkpoint untouched
    users = {e.name: e for e in list_zoo() if e.origin == "user"}
    assert set(users) == {"mine"} and users["mine"].ok and users["mine"].report
    assert users["mine"].meta["base"] == str(shipped)
    assert hashlib.sha256(shipped.read_bytes()).hexdigest() == shipped_hash
    assert not any((Path(os.environ["FER_USER_MODELS"]) / ".staging").iterdir())  # nothing half-written
    # state survives a new runner (an app restart)
    again = JobRunner().get(job.id)
    assert again.state == "finished" and again.result == r
    # the same name again is refused; rename and delete act on user models only
    with pytest.raises(JobError, match="already"):
        env.submit(spec(zoo_root))
    with pytest.raises(JobError, match="taken"):
        rename_user_model("mine", "alpha")  # a shipped name
    rename_user_model("mine", "mine2")
    with pytest.raises(JobError):
        delete_user_model("../checkpoints")
    delete_user_model("mine2")
    assert not [e for e in list_zoo() if e.origin == "user"] and shipped.is_file()


def test_cancel_stops_the_process_and_marks_the_job(env, zoo_root, monkeypatch):
    monkeypatch.setenv("FER_JOBS_SLOW_BATCH_S", "0.3")
    job = env.submit(spec(zoo_root, epochs=20, batch_size=4))
    job = wait_for(env, job.id, lambda j: j.progress.get("batch", 0) >= 1)
    assert job.state == "running" and job.eta_s is not None
    t0 = time.time()
    job = env.cancel(job.id)
    assert job.state == "cancelled" and time.time() - t0 < 10
    assert not process_alive(job.pid, job.pid_start)
    with pytest.raises(ProcessLookupError):
        os.killpg(job.pid, 0)  # the whole process group is gone
    assert not [e for e in list_zoo() if e.origin == "user"]


def test_failing_job_is_marked_failed_with_its_error(env, zoo_root, tmp_path):
    (tmp_path / "not_fer").mkdir()  # exists, so accepted, but holds no FER2013
    job = env.wait(env.submit(spec(zoo_root, data_path=str(tmp_path / "not_fer"))).id)
    assert job.state == "failed"
    assert "DataError" in job.error and "not_fer" in job.error
    assert "Traceback" in job.log_tail(40)


def test_queue_drains_without_anyone_watching(env, zoo_root, monkeypatch):
    monkeypatch.setenv("FER_JOBS_SLOW_BATCH_S", "0.3")
    first = env.submit(spec(zoo_root, "first"))
    second = env.submit(spec(zoo_root, "second"))
    assert first.state == "starting" and second.state == "queued"
    # only read job.json from here on: the first job's process must start the second
    second = wait_for(env, second.id, lambda j: j.state in ("finished", "failed"), timeout=90)
    assert second.state == "finished", second.error
    assert env.get(first.id).state == "finished"
    assert env.get(first.id).ended <= second.started


def test_killed_job_is_recovered_as_failed(env, zoo_root, monkeypatch):
    monkeypatch.setenv("FER_JOBS_SLOW_BATCH_S", "0.3")
    job = env.submit(spec(zoo_root, epochs=20, batch_size=4))
    job = wait_for(env, job.id, lambda j: j.state == "running")
    os.killpg(job.pid, signal.SIGKILL)  # an OOM kill or a crash: no chance to report
    wait_for(env, job.id, lambda j: not process_alive(j.pid, j.pid_start), timeout=10)
    job = next(j for j in JobRunner().list() if j.id == job.id)  # a fresh runner, as after an app restart
    assert job.state == "failed" and "ended without reporting" in job.error


def test_after_a_sigkill_the_queue_goes_on_and_retry_resumes_from_the_last_epoch(env, zoo_root, monkeypatch):
    monkeypatch.setenv("FER_JOBS_SLOW_BATCH_S", "0.3")
    first = env.submit(spec(zoo_root, "first", epochs=3, batch_size=4))
    second = env.submit(spec(zoo_root, "second"))
    assert second.state == "queued"
    first = wait_for(env, first.id, lambda j: len(j.progress.get("history", [])) >= 1)  # resume.pt saved
    done_rows = first.progress["history"]
    os.killpg(first.pid, signal.SIGKILL)  # the job process can neither report nor start the next job
    wait_for(env, first.id, lambda j: not process_alive(j.pid, j.pid_start), timeout=10)
    assert env.get(second.id).state == "queued"  # nobody started it
    monkeypatch.delenv("FER_JOBS_SLOW_BATCH_S")  # the jobs started from here on run at full speed
    runner = JobRunner()  # a new instance, as after an app restart
    runner.refresh()
    first, second = runner.get(first.id), runner.get(second.id)
    assert second.state in ("starting", "running")
    assert first.state == "failed" and "ended without reporting" in first.error and "Resume" in first.error
    assert first.retryable and first.resumable
    with pytest.raises(JobError, match="only a failed or cancelled"):
        runner.retry(second.id)
    first = runner.retry(first.id)
    assert first.state == "queued" and first.retries == 1 and first.error is None  # behind the running job
    first = wait_for(runner, first.id, lambda j: j.state in ("finished", "failed"), timeout=120)
    assert first.state == "finished", first.error
    assert runner.get(second.id).state == "finished" and runner.get(second.id).ended <= first.started
    log = first.log_tail(80)
    assert f"resuming from resume.pt: {len(done_rows)} of 3 epochs already done" in log
    history = first.progress["history"]
    assert len(history) == 3 and history[: len(done_rows)] == done_rows  # kept, not trained again
    assert first.result["model"] == "first" and first.result["after"]["n"] == 14
    assert {e.name for e in list_zoo() if e.origin == "user"} == {"first", "second"}
    with pytest.raises(JobError, match="only a failed or cancelled"):
        runner.retry(first.id)


def test_no_job_starts_while_a_job_process_holds_the_runner_lock(env, zoo_root):
    with open(env.root / "runner.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # e.g. a cancelled job still cleaning up
        job = env.submit(spec(zoo_root))
        assert job.state == "queued" and env.list()[0].state == "queued"
    assert env.list()[0].state in ("starting", "running")  # lock free: the next listing starts it


def test_a_full_disk_fails_the_job_with_a_clear_message(env, zoo_root, monkeypatch):
    import errno

    from fer_core.jobs import worker

    with open(env.root / "runner.lock", "a") as held:  # keep it queued, to run it here instead
        fcntl.flock(held, fcntl.LOCK_EX)
        job = env.submit(spec(zoo_root))

    def full(*_a, **_k):  # noqa: ANN202
        raise OSError(errno.ENOSPC, "No space left on device", "/data/run/resume.pt")

    monkeypatch.setattr(worker, "load_job_data", full)
    monkeypatch.setattr(worker.signal, "signal", lambda *a: None)  # leave pytest's handlers alone
    assert worker.run_job(job.folder) == 1
    job = env.get(job.id)
    assert job.state == "failed" and job.error.startswith("the disk is full (/data/run/resume.pt)")


def test_retry_refuses_what_cannot_run_again(env, zoo_root, tmp_path):
    import shutil

    base = tmp_path / "base"
    shutil.copytree(zoo_root / "alpha", base)
    job = env.wait(env.submit(spec(zoo_root, base=str(base / "model.safetensors"), data_path=str(tmp_path))).id)
    assert job.state == "failed" and job.retryable and not job.resumable  # no FER2013 there: no epoch done
    shutil.rmtree(base)  # e.g. a user model deleted since
    with pytest.raises(JobError, match="cannot be retried: base checkpoint"):
        env.retry(job.id)


def some_faces(n_per_class: dict[str, int]) -> dict[str, list[np.ndarray]]:
    """Mini-FER2013 faces as 48x48 crops, ``n`` of them (all different) per class."""
    faces = [np.asarray(Image.open(f).convert("L")) for f in FACES]
    out, k = {}, 0
    for c, n in n_per_class.items():
        out[c] = faces[k : k + n]
        k += n
    return out


def test_my_faces_are_stored_as_pngs_and_checked(env, tmp_path):
    root = my_faces_root()
    assert root == env.root / "my_faces"  # follows FER_JOBS_DIR, so tests and deployments keep it apart
    faces = some_faces({"happy": 6, "sad": 2})
    for c, crops in faces.items():
        for crop in crops:
            save_face(crop, c, source=f"Upload: test.jpg ({c})")
    assert face_counts() == {c: {"happy": 6, "sad": 2}.get(c, 0) for c in face_counts()}
    first = faces["happy"][0]
    path = save_face(first, "happy")  # the same face again: one file
    assert face_counts()["happy"] == 6 and path.parent.name == "happy"
    assert (Image.open(path).convert("L").tobytes() == first.tobytes()) and Image.open(path).format == "PNG"
    assert face_source(list_faces()["sad"][0]) == "Upload: test.jpg (sad)"
    moved = save_face(first, "fear")  # relabelled: it moves
    assert face_counts()["happy"] == 5 and face_counts()["fear"] == 1 and not path.exists() and moved.is_file()
    assert not list(root.rglob("*.tmp"))
    with pytest.raises(ValueError, match="unknown expression"):
        save_face(first, "contempt")
    with pytest.raises(ValueError, match="grayscale uint8"):
        save_face(first.astype("float32"), "happy")
    with pytest.raises(ValueError, match="not a face id"):
        delete_face("happy", "../../escape")
    # a job needs two expressions, each with at least 5 faces; the message says which and what to do
    with pytest.raises(UploadError, match=r"too few faces in fear \(1\), sad \(2\): at least 5 per class"):
        env.snapshot_my_faces()
    delete_face("fear", moved.stem)
    assert delete_class("sad") == 2
    with pytest.raises(UploadError, match=r"one expression only \(happy\)"):
        env.snapshot_my_faces()
    delete_class("happy")
    with pytest.raises(UploadError, match="no saved faces yet"):
        env.snapshot_my_faces()
    assert not (env.root / "uploads").exists() or not any((env.root / "uploads").iterdir())  # nothing half-made


def test_finetune_on_my_faces_trains_on_a_snapshot(env, zoo_root):
    for c, crops in some_faces({"happy": 6, "sad": 6, "angry": 6}).items():
        for crop in crops:
            save_face(crop, c, source="Webcam")
    folder, summary = env.snapshot_my_faces()
    assert summary.counts == {"angry": 6, "happy": 6, "sad": 6}
    delete_class("angry")  # after the snapshot: the job's data does not change
    job = env.submit(spec(zoo_root, "mine-faces", data="my_faces", data_path=str(folder)))
    job = env.wait(job.id, timeout=90)
    assert job.state == "finished", job.error
    assert job.result["eval_split"] == "held-out 20% of your faces" and job.result["after"]["n"] == 3
    assert job.result["train_faces"] == 15 and job.result["model"] == "mine-faces"
    users = {e.name: e for e in list_zoo() if e.origin == "user"}
    assert users["mine-faces"].ok and users["mine-faces"].meta["finetune"]["data"] == "my_faces"


def make_zip(entries: dict[str, bytes], links: tuple[str, ...] = ()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16) | 0
            zf.writestr(info, "/etc/passwd")
    return buf.getvalue()


def faces_zip(classes: dict[str, int], prefix: str = "") -> bytes:
    jpg = FACES[0].read_bytes()
    return make_zip({f"{prefix}{c}/{i}.jpg": jpg for c, n in classes.items() for i in range(n)})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not a zip at all", "not a zip"),
        (make_zip({"happy/../../evil.jpg": b"x"}), "unsafe path"),
        (make_zip({"/etc/evil.jpg": b"x"}), "unsafe path"),
        (make_zip({"happy/a.jpg": b"x"}, links=("happy/link.jpg",)), "symbolic link"),
        (make_zip({"happy/readme.txt": b"x"}), "no usable images"),
        (faces_zip({"contempt": 6}), "folders found: contempt"),
        (faces_zip({"happy": 6, "sad": 2}), "too few images in sad"),
        (faces_zip({"happy": 6}), "one expression only"),
    ],
    ids=["not-zip", "dotdot", "absolute", "symlink", "no-images", "unknown-class", "too-few", "one-class"],
)
def test_bad_zips_are_refused(tmp_path, data, message):
    with pytest.raises(UploadError, match=message):
        extract_faces_zip(data, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.jpg"))


def test_zip_limits_and_unknown_classes_reported(tmp_path):
    summary = extract_faces_zip(faces_zip({"happiness": 5, "sad": 5, "contempt": 3}, "my faces/"), tmp_path / "a")
    assert summary.counts == {"happy": 5, "sad": 5} and summary.unknown_classes == {"contempt": 3}
    assert len(list((tmp_path / "a" / "happy").iterdir())) == 5
    with pytest.raises(UploadError, match="at most"):
        extract_faces_zip(faces_zip({"happy": 6}), tmp_path / "b", max_total_bytes=1000)


def test_finetune_on_own_faces_with_frozen_backbone(env, zoo_root):
    jpgs = {f"{c}/{i}.jpg": f.read_bytes() for c in ("happy", "sad", "angry") for i, f in enumerate(FACES[:6])}
    folder, _ = env.extract_upload(make_zip(jpgs))
    job = env.wait(env.submit(spec(zoo_root, "own", data="zip", data_path=str(folder), freeze_backbone=True)).id)
    assert job.state == "finished", job.error
    assert job.result["eval_split"].startswith("held-out") and job.result["after"]["n"] == 3  # one of 6 per class
    base = load_file(str(zoo_root / "alpha" / "model.safetensors"))
    tuned = load_file(str(Path(os.environ["FER_USER_MODELS"]) / "own" / "model.safetensors"))
    changed = {k for k in base if not torch.equal(base[k].float(), tuned[k].float())}
    head = max(k for k in base if k.startswith("classifier.") and k.endswith(".weight"))  # the last Linear
    assert head in changed and all(k.startswith(head.rsplit(".", 1)[0]) for k in changed), changed


@pytest.mark.parametrize(
    "bad",
    [
        {"epochs": 0},
        {"epochs": 21},
        {"lr": 0.0},
        {"lr": 5.0},
        {"lr": float("nan")},
        {"batch_size": 0},
        {"augment": "wild"},
        {"name": "../escape"},
        {"base": "/no/such/model.safetensors"},
        {"data": "zip", "data_path": "/no/such/folder"},
    ],
    ids=lambda b: next(iter(b)) + "=" + str(next(iter(b.values()))),
)
def test_out_of_range_settings_are_refused(env, zoo_root, bad):
    with pytest.raises(JobError):
        env.submit(spec(zoo_root, **{"name": "x", **bad}))
    assert env.list() == []


def test_sweep_grid_and_script(env, tmp_path):
    mini = {"data_path": str(MINI_FOLDER)}
    specs = sweep_specs("s", "deep_emotion", ["adamw", "sgd"], [1e-3, 1e-2], ["cosine"], epochs=1, **mini)
    assert [s.name for s in specs][0] == "s-adamw-lr0.001-cosine" and len(specs) == 4
    assert not any(s.register for s in specs)
    with pytest.raises(JobError, match="at most"):
        sweep_specs("s", "vggnet", ["adamw", "adam", "sgd"], [1e-4, 1e-3, 1e-2], ["cosine", "plateau"], **mini)
    sys.path.insert(0, str(ROOT / "scripts"))
    import sweep

    args = ["--data", str(MINI_FOLDER), "--model", "deep_emotion", "--optimizers", "sgd", "--lrs", "0.01"]
    assert sweep.main([*args, "--epochs", "1", "--max-train-samples", "0", "--wait"]) == 0
    from fer_core.runs import list_runs, runs_table

    table = runs_table(list_runs(env.root))
    assert list(table["optimizer"]) == ["sgd"] and list(table["lr"]) == [0.01]
    assert table["run"].iloc[0].startswith("sweep-sgd-lr0.01-cosine (job ")  # named as queued, not by its path
    assert not [e for e in list_zoo() if e.origin == "user"]


def test_user_models_load_by_name_for_inference(tmp_path, monkeypatch, zoo_root):
    """The Upload and Webcam pages pass names: a fine-tuned user model must resolve like a shipped one."""
    import shutil

    from fer_core.inference import load_models

    user = tmp_path / "user_models"
    shutil.copytree(zoo_root / "alpha", user / "my_model")
    monkeypatch.setenv("FER_USER_MODELS", str(user))
    (loaded,) = load_models("my_model", root=zoo_root)
    assert loaded.name == "my_model"
