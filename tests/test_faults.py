"""Faults, as they really happen: ``kill -9`` of ``train_all.py`` in the middle of an epoch and ``--resume``,
and a disk that fills up while a checkpoint is written.

test_train.py already resumes a run stopped by an exception right after an epoch boundary, in-process;
here the process is SIGKILLed part-way through an epoch (the state on disk is whatever the last
atomic write left) and resumed by the command line, as a user would. The fine-tune job's own
``kill -9`` is tested in test_jobs.py.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import MINI_FOLDER, ROOT

pytestmark = pytest.mark.slow
TRAIN = ["--models", "deep_emotion", "--epochs", "3", "--batch-size", "6", "--data", str(MINI_FOLDER)]
TRAIN += ["--threads", "1", "--no-eval", "--no-progress"]

# train_all.py exactly as typed, with a hook that reports each step on stdout and sleeps a little, so the
# test can kill it at a known batch of a known epoch
_SLOW_TRAIN_ALL = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {scripts!r})
    import train_all

    def slow_train(*args, **kwargs):
        def on_batch(step):
            print(f"step {{step['epoch'] + 1}} {{step['batch']}}", flush=True)
            time.sleep(0.15)
        return real_train(*args, on_batch=on_batch, **kwargs)

    real_train, train_all.train = train_all.train, slow_train
    sys.exit(train_all.main(sys.argv[1:]))
    """
)


def run_train_all(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "scripts/train_all.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def epochs_logged(run: Path) -> list[dict]:
    with open(run / "log.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k not in ("seconds", "images_per_s")} for row in csv.DictReader(f)]


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole = subprocess.Popen(  # the reference run, alongside the one to kill
        [sys.executable, "scripts/train_all.py", *TRAIN, "--out", str(tmp_path / "whole")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_TRAIN_ALL.format(scripts=str(ROOT / "scripts")), *TRAIN, "--out", str(out)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 240
        for line in proc.stdout:  # epoch 1 has 4 steps of 6 faces; kill after the 2nd step of epoch 2
            if line.strip() == "step 2 2" or time.time() > deadline:
                break
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL and line.strip() == "step 2 2"
    run = out / "deep_emotion"
    assert len(torch.load(run / "resume.pt", weights_only=True)["state"]["history"]) == 1  # epoch 2 lost, no more
    assert not list(run.glob(".*.tmp")), "a half-written file was left behind"

    resumed = run_train_all(*TRAIN, "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert whole.wait(300) == 0, whole.stderr.read()
    a = torch.load(tmp_path / "whole" / "deep_emotion" / "resume.pt", weights_only=True)
    b = torch.load(run / "resume.pt", weights_only=True)
    assert b["state"]["done"] and b["state"]["epoch"] == 3
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k  # the same final weights, bit for bit
    assert epochs_logged(run) == epochs_logged(tmp_path / "whole" / "deep_emotion")  # the same metrics per epoch
    best_a, best_b = (load_file(str(r / "deep_emotion" / "best.safetensors")) for r in (tmp_path / "whole", out))
    assert best_a.keys() == best_b.keys() and all(torch.equal(best_a[k], best_b[k]) for k in best_a)


# A process in its own mount namespace mounts a 1 MB tmpfs, saves a checkpoint and a resume state, fills the
# disk, and tries to write new ones over them; the mount disappears with the process.
_FULL_DISK = textwrap.dedent(
    """
    set -e
    mount -t tmpfs -o size=1m tmpfs "$DISK"
    "$PYTHON" - <<'PY'
    import os, sys, torch
    sys.path.insert(0, os.environ["ROOT"])
    from fer_core.checkpoint import atomic_write_bytes, load_checkpoint, model_meta, save_checkpoint
    from fer_core.models import create_model
    disk = os.environ["DISK"]
    path, resume = os.path.join(disk, "model.safetensors"), os.path.join(disk, "resume.pt")
    torch.manual_seed(0)
    old = create_model("vggnet", widths=(8, 16, 16, 16), fc=32)
    save_checkpoint(old, path, model_meta(old, epochs=1))
    atomic_write_bytes(resume, lambda tmp: torch.save({"epoch": 1}, tmp))
    with open(os.path.join(disk, "filler"), "wb") as f:  # fill what is left but 20 kB
        f.write(b"\\0" * (os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize - 20_000))
    torch.manual_seed(1)
    new = create_model("vggnet", widths=(8, 16, 16, 16), fc=32)
    for what, save in [
        ("checkpoint", lambda: save_checkpoint(new, path, model_meta(new, epochs=2))),
        ("resume", lambda: atomic_write_bytes(resume, lambda t: torch.save({"w": new.state_dict()}, t))),
    ]:
        try:
            save()
        except OSError as exc:
            print(what, "failed:", exc.strerror)
    model, meta = load_checkpoint(path)
    x = torch.randn(2, 1, 40, 40)
    print("old checkpoint survives:", meta["epochs"] == 1 and torch.equal(model(x), old.eval()(x)))
    print("old resume survives:", torch.load(resume, weights_only=True) == {"epoch": 1})
    print("left over:", sorted(set(os.listdir(disk)) - {"model.safetensors", "model.json", "resume.pt", "filler"}))
    PY
    """
)


def test_full_disk_during_checkpoint_save_keeps_the_old_checkpoint(tmp_path):
    """A real ENOSPC (a full 1 MB tmpfs), not a mocked one (test_checkpoint.py mocks it, for where mounting is
    impossible): the old files survive, no temporary file is left, and both writers say the disk is full
    (safetensors and torch.save report it in their own words; the checkpoint module makes it an OSError)."""
    if not shutil.which("unshare") or os.geteuid() != 0:
        pytest.skip("needs root and unshare to mount a small tmpfs")
    disk = tmp_path / "disk"
    disk.mkdir()
    env = {**os.environ, "DISK": str(disk), "ROOT": str(ROOT), "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", _FULL_DISK],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if "mount:" in res.stderr and res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()[:200]}")
    assert res.returncode == 0, res.stderr
    for line in ("checkpoint failed: No space left on device", "resume failed: No space left on device",
                 "old checkpoint survives: True", "old resume survives: True", "left over: []"):  # fmt: skip
        assert line in res.stdout.splitlines(), res.stdout + res.stderr
