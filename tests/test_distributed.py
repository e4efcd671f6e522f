"""DistributedDataParallel under torchrun, with gloo on the CPU: two ranks train, match one process,
ship a checkpoint the dashboard loads, and fail cleanly (then resume) when a rank is killed.

The torchrun jobs run ``scripts/train_all.py`` exactly as a user would, two ranks of one thread each
(``OMP_NUM_THREADS=1 --threads 1``) on the committed mini FER2013 (21 training faces).
"""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from conftest import MINI_FOLDER, ROOT
from fer_core.train import TrainConfig, distributed, run_finished, train

pytestmark = [
    pytest.mark.distributed,
    pytest.mark.skipif(
        not (dist.is_available() and dist.is_gloo_available()), reason="torch.distributed with gloo is not available"
    ),
]

TINY = {"widths": (8, 16, 16, 16), "fc": 32}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_cmd(nproc: int, *args: str) -> list[str]:
    """``torchrun --nproc_per_node=nproc scripts/train_all.py args`` (nproc 0: a plain single process)."""
    script = ["scripts/train_all.py", *args, "--data", str(MINI_FOLDER), "--threads", "1", "--no-progress"]
    if nproc == 0:
        return [sys.executable, *script]
    launcher = ["-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--master_port", str(free_port())]
    return [sys.executable, *launcher, *script]


def run_job(nproc: int, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = torchrun_cmd(nproc, *args)
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout)


def log_rows(run_dir: Path) -> list[dict]:
    return list(csv.DictReader((run_dir / "log.csv").read_text().splitlines()))


def deterministic_rows(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")} for r in rows]


# ---- the helpers, in this process -------------------------------------------------------------------


def test_backend_is_nccl_on_gpus_and_gloo_on_cpus():
    assert distributed.backend_for(torch.device("cuda", 0)) == "nccl"
    assert distributed.backend_for(torch.device("cpu")) == "gloo"
    assert distributed.rank_device("cpu", local_rank=3) == torch.device("cpu")
    if torch.cuda.is_available():
        assert distributed.rank_device("auto", local_rank=0) == torch.device("cuda", 0)
        with pytest.raises(ValueError, match="LOCAL_RANK"):
            distributed.rank_device("cuda:0", local_rank=0)
    else:
        assert distributed.rank_device("auto", local_rank=1) == torch.device("cpu")


def test_global_batch_is_shared_out_and_tail_kept_when_every_rank_gets_a_face():
    batch = torch.arange(7)
    shares = [distributed.shard(batch, r, 3).tolist() for r in range(3)]
    assert shares == [[0, 1, 2], [3, 4], [5, 6]]  # every face once, in order, sizes differ by at most one
    assert distributed.shard(batch, 0, 1).tolist() == batch.tolist()
    assert distributed.steps_per_epoch(21, 6, 1) == 4  # one process: the partial batch of 3 always runs
    assert distributed.steps_per_epoch(21, 6, 2) == 4  # 3 faces for 2 ranks: kept
    assert distributed.steps_per_epoch(21, 6, 4) == 3  # 3 faces for 4 ranks: one would have none, dropped
    with pytest.raises(ValueError, match="global batch"):
        distributed.steps_per_epoch(21, 2, 4)


def test_rank_seeds_are_reproducible_and_distinct():
    seeds = {distributed.rank_seed(0, e, r) for e in range(50) for r in range(8)}
    assert len(seeds) == 400
    assert distributed.rank_seed(3, 7, 1) == distributed.rank_seed(3, 7, 1)
    assert all(0 <= s < 2**56 for s in seeds)  # fits torch.manual_seed


def test_collectives_are_identities_in_one_process():
    assert distributed.all_reduce_sum([1.5, 2.0]) == [1.5, 2.0]
    assert distributed.broadcast_floats([0.25]) == [0.25]
    assert distributed.any_rank(True) and not distributed.any_rank(0.0)
    t = torch.arange(3)
    assert distributed.broadcast_(t) is t


@pytest.fixture
def one_rank_job(monkeypatch):
    """This process as rank 0 of a one-rank torchrun job (gloo), left again afterwards."""
    env = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1"}
    env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    try:
        yield
    finally:
        distributed.teardown()


def test_one_rank_under_ddp_trains_bit_for_bit_like_the_plain_loop(tmp_path, mini_splits, one_rank_job, monkeypatch):
    cfg = dict(model_args=TINY, batch_size=7, epochs=2, augment="strong", threads=1, device="cpu")
    ddp_run = train(TrainConfig.from_recipe("vggnet", out=str(tmp_path / "ddp"), **cfg), mini_splits, progress=False)
    assert dist.is_initialized() and dist.get_backend() == "gloo"
    distributed.teardown()
    monkeypatch.delenv("RANK")  # the plain loop again
    plain_run = train(
        TrainConfig.from_recipe("vggnet", out=str(tmp_path / "plain"), **cfg), mini_splits, progress=False
    )
    a = torch.load(plain_run / "resume.pt", weights_only=True)
    b = torch.load(ddp_run / "resume.pt", weights_only=True)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert deterministic_rows(a["state"]["history"]) == deterministic_rows(b["state"]["history"])


def test_sync_bn_is_refused_on_the_cpu(tmp_path, mini_splits, one_rank_job):
    cfg = TrainConfig.from_recipe("vggnet", model_args=TINY, out=str(tmp_path), epochs=1, sync_bn=True, device="cpu")
    with pytest.raises(ValueError, match="SyncBatchNorm"):
        train(cfg, mini_splits, progress=False)
    assert not (tmp_path / "vggnet" / "resume.pt").exists()


# ---- torchrun jobs -------------------------------------------------------------------------------


@pytest.mark.slow
def test_two_ranks_match_one_process_with_the_same_global_batch(tmp_path):
    """The same epoch on 2 ranks and on 1 process: the same faces per global step (rank 0's shuffle,
    shares of each batch, the uneven last share of 2 + 1 faces weighted), so the same loss and weights.

    lobo_net_2conv has no BatchNorm and no dropout, ``--augment none`` leaves a 48x48 face with crop
    1.0 untouched, and ``--no-amp`` keeps float32: what is left is the order of floating-point sums
    (batches of 3 instead of 6, DDP's gradient average). Measured: equal logged losses (5 decimals),
    weights 5e-7 of the epoch's update apart. Tolerances: 1e-4 in loss, 1e-4 of the update in weights.
    Checked to fail: without DDP the weights end 58% of the update apart and the logged train loss
    differs by 0.06 (rank 0's faces only, without the reduction); without the weighting of the uneven
    last share, 0.8% apart. (With bf16 autocast the same comparison gives 0.4%: rounding, not a bug.)"""
    args = ["--models", "lobo_net_2conv", "--epochs", "1", "--batch-size", "6", "--augment", "none", "--no-amp"]
    args += ["--optimizer", "sgd", "--lr", "0.05", "--no-eval"]
    one = run_job(0, *args, "--out", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr[-3000:]
    two = run_job(2, *args, "--out", str(tmp_path / "two"))
    assert two.returncode == 0, two.stderr[-3000:]
    (a,), (b,) = log_rows(tmp_path / "one" / "lobo_net_2conv"), log_rows(tmp_path / "two" / "lobo_net_2conv")
    assert abs(float(a["train_loss"]) - float(b["train_loss"])) < 1e-4, (a, b)
    assert abs(float(a["val_loss"]) - float(b["val_loss"])) < 1e-4, (a, b)
    assert a["train_acc"] == b["train_acc"]  # accuracy over all 21 faces: counts reduced over both ranks

    from fer_core.models import create_model

    torch.manual_seed(0)  # the run's seed: its initial weights
    init = create_model("lobo_net_2conv").state_dict()
    wa = torch.load(tmp_path / "one" / "lobo_net_2conv" / "resume.pt", weights_only=True)["model"]
    wb = torch.load(tmp_path / "two" / "lobo_net_2conv" / "resume.pt", weights_only=True)["model"]
    gap = sum(((wa[k] - wb[k]) ** 2).sum() for k in wa) ** 0.5
    update = sum(((wa[k] - init[k]) ** 2).sum() for k in wa) ** 0.5
    assert update > 0.1  # the epoch really moved the weights
    assert gap / update < 1e-4, f"weights {gap / update:.2e} of the update apart"


@pytest.mark.slow
def test_two_ranks_train_and_ship_a_checkpoint_the_dashboard_loads(tmp_path):
    ship = tmp_path / "ship"
    res = run_job(
        2,
        "--models",
        "deep_emotion",
        "--epochs",
        "2",
        "--batch-size",
        "6",
        "--out",
        str(tmp_path / "runs"),
        "--ship",
        str(ship),
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout + res.stderr
    assert out.count("deep_emotion epoch 1:") == 1 and out.count("deep_emotion epoch 2:") == 1  # rank 0 logs alone
    assert out.count("deep_emotion: epochs=") == 1  # and evaluates alone
    assert [r["epoch"] for r in log_rows(tmp_path / "runs" / "deep_emotion")] == ["1", "2"]
    assert run_finished(tmp_path / "runs" / "deep_emotion")
    assert "deep_emotion" in (tmp_path / "runs" / "summary.md").read_text()
    assert not list(tmp_path.rglob("*.tmp"))  # no half-written file from a second writer

    # the dashboard's way in: the zoo listing, then load_checkpoint (pages/_common.py), then predict
    from fer_core.checkpoint import load_checkpoint
    from fer_core.data import load_fer2013
    from fer_core.eval import predict_probs
    from fer_core.zoo import list_checkpoints

    (entry,) = list_checkpoints(ship)
    assert entry.ok and entry.report is not None, entry.error
    model, meta = load_checkpoint(entry.weights)
    assert meta["hardware"].startswith("2 x CPU") and meta["epochs"] in (1, 2)
    faces = load_fer2013(MINI_FOLDER)["PrivateTest"]
    probs = predict_probs(model, faces.images)
    assert probs.shape == (len(faces), 7) and torch.allclose(probs.sum(1), torch.ones(len(faces)), atol=1e-4)
    reported = entry.report["splits"]["PrivateTest"]["none"]["accuracy"]
    assert (probs.argmax(1) == faces.labels).float().mean().item() == pytest.approx(reported, abs=1e-6)


def _worker_pid(launcher_pid: int, rank: int) -> int | None:
    """The pid of torchrun's worker with ``RANK=rank`` (workers are the launcher's children)."""
    children = Path(f"/proc/{launcher_pid}/task/{launcher_pid}/children")
    for pid in children.read_text().split() if children.exists() else []:
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ:
            return int(pid)
    return None


def kill_rank_after_first_epoch(args: list[str], run_dir: Path, rank: int = 1) -> tuple[int, str, float]:
    """Start a 2-rank job, SIGKILL rank ``rank`` once rank 0 has logged epoch 1; returns the job's
    exit code, its output and the seconds it took to end after the kill."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    job = subprocess.Popen(
        torchrun_cmd(2, *args),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, so a failing test can end every rank
    )
    try:
        deadline = time.time() + 240
        while not (run_dir / "log.csv").exists():
            assert job.poll() is None and time.time() < deadline, "the job ended before its first epoch"
            time.sleep(0.02)
        victim = _worker_pid(job.pid, rank)
        assert victim is not None, "no worker with RANK=1 under torchrun"
        os.kill(victim, signal.SIGKILL)
        killed_at = time.time()
        output, _ = job.communicate(timeout=120)
        return job.returncode, output, time.time() - killed_at
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()


needs_proc = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the worker's pid through /proc")


@pytest.mark.slow
@needs_proc
def test_a_killed_rank_fails_the_job_and_resume_continues_on_another_rank_count(tmp_path):
    epochs = 40
    args = ["--models", "deep_emotion", "--epochs", str(epochs), "--batch-size", "6", "--no-eval"]
    args += ["--out", str(tmp_path), "--dist-timeout-minutes", "1"]
    run_dir = tmp_path / "deep_emotion"
    returncode, output, failed_after = kill_rank_after_first_epoch(args, run_dir)
    assert returncode != 0, output[-3000:]
    assert failed_after < 90, f"the job took {failed_after:.0f} s to fail"
    before = log_rows(run_dir)
    assert 1 <= len(before) < epochs and not run_finished(run_dir)

    resumed = run_job(0, *args, "--resume")  # one process now
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = log_rows(run_dir)
    assert [int(r["epoch"]) for r in after] == list(range(1, epochs + 1))
    assert deterministic_rows(after[: len(before)]) == deterministic_rows(before)  # continued, not restarted
    assert run_finished(run_dir)


@pytest.mark.slow
@needs_proc
def test_resume_on_the_same_rank_count_is_exact(tmp_path):
    """Rank 0's random state is saved and the other ranks reseed from (seed, epoch, rank): killed and
    resumed on 2 ranks ends bit for bit where an uninterrupted 2-rank run ends (augmentation, dropout)."""
    args = ["--models", "deep_emotion", "--epochs", "12", "--batch-size", "6", "--augment", "strong", "--no-eval"]
    whole = run_job(2, *args, "--out", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr[-3000:]
    cut = [*args, "--out", str(tmp_path / "cut")]
    returncode, output, _ = kill_rank_after_first_epoch(cut, tmp_path / "cut" / "deep_emotion")
    assert returncode != 0 and not run_finished(tmp_path / "cut" / "deep_emotion"), output[-3000:]
    resumed = run_job(2, *cut, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = torch.load(tmp_path / "whole" / "deep_emotion" / "resume.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "deep_emotion" / "resume.pt", weights_only=True)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert deterministic_rows(a["state"]["history"]) == deterministic_rows(b["state"]["history"])
