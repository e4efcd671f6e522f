"""The command-line scripts as a user runs them, on the committed mini FER2013."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import MINI_CSV, MINI_FOLDER, ROOT


def run(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)


def test_train_all_help_explains_every_option():
    out = run("scripts/train_all.py", "--help").stdout
    for opt in ("--models", "--epochs", "--budget-minutes", "--batch-size", "--lr", "--data", "--out", "--resume"):
        assert opt in out


def train_lobo_2conv_bn(out, *extra: str) -> subprocess.CompletedProcess:
    """One epoch of a lobo_net ablation on the mini csv, as a user types it."""
    args = ["--models", "lobo_net_2conv_bn", "--epochs", "1", "--data", str(MINI_CSV), "--out", str(out)]
    return run("scripts/train_all.py", *args, "--no-progress", "--threads", "1", *extra)


def test_train_all_trains_evaluates_ships_and_summarises(tmp_path):
    out = tmp_path / "runs"
    res = train_lobo_2conv_bn(out, "--ship", str(tmp_path / "ship"))
    assert res.returncode == 0, res.stderr
    assert "lobo_net_2conv_bn epoch 1" in res.stdout + res.stderr
    shipped = tmp_path / "ship" / "lobo_net_2conv_bn"
    files = sorted(p.name for p in shipped.iterdir())
    assert files == ["log.csv", "model.json", "model.safetensors", "probs.npz", "report.json"]
    report = json.loads((shipped / "report.json").read_text())
    assert set(report["splits"]) == {"PublicTest", "PrivateTest"}
    assert set(report["splits"]["PrivateTest"]) == {"none", "flip", "tencrop"}
    assert "lobo_net_2conv_bn" in (out / "summary.md").read_text()
    # a second --resume run finds the finished run and does not train again
    again = train_lobo_2conv_bn(out, "--resume", "--no-eval")
    assert "not training again" in again.stdout


def test_a_budget_that_stops_one_model_starts_no_other(tmp_path, monkeypatch, capsys):
    """A budget stop ends a run an epoch early, with minutes left: the next model must not start (its first
    epoch always runs, and would overrun the budget)."""
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import train_all

    started = []
    monkeypatch.setattr(train_all, "train", lambda cfg, splits, **kw: started.append(cfg.model))  # left unfinished
    names = ["deep_emotion", "lobo_net_2conv"]
    args = train_all.parse_args(["--models", ",".join(names), "--budget-minutes", "60", "--out", str(tmp_path)])
    assert list(train_all.train_models(args, names, splits={})) == ["deep_emotion"]
    assert started == ["deep_emotion"]
    assert "budget spent; lobo_net_2conv not started" in capsys.readouterr().out


def test_evaluate_writes_a_report_next_to_the_checkpoint(tmp_path):
    res = run(
        "scripts/train_all.py",
        "--models",
        "vggnet",
        "--epochs",
        "1",
        "--max-train-samples",
        "14",
        "--data",
        str(MINI_FOLDER),
        "--out",
        str(tmp_path),
        "--no-eval",
        "--no-progress",
        "--threads",
        "1",
    )
    assert res.returncode == 0, res.stderr
    ckpt = tmp_path / "vggnet" / "best.safetensors"
    res = run("scripts/evaluate.py", "--checkpoint", str(ckpt), "--data", str(MINI_FOLDER))
    assert res.returncode == 0, res.stderr
    assert "PrivateTest  tencrop" in res.stdout
    report = json.loads((tmp_path / "vggnet" / "report.json").read_text())
    assert report["splits"]["PublicTest"]["none"]["n"] == 14


def test_clear_errors_for_bad_input(tmp_path):
    res = run("scripts/train_all.py", "--models", "nope", "--data", str(MINI_FOLDER))
    assert res.returncode == 2 and "unknown model 'nope'" in res.stderr
    res = run("scripts/train_all.py", "--models", "vggnet", "--data", str(tmp_path / "missing"))
    assert res.returncode == 2 and "does not exist" in res.stderr
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    res = run("scripts/evaluate.py", "--checkpoint", str(tmp_path / "bad.safetensors"), "--data", str(MINI_FOLDER))
    assert res.returncode == 2 and "bad.safetensors" in res.stderr and "Traceback" not in res.stderr
