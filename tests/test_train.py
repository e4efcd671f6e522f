"""The training loop: it learns, resumes exactly, honours budgets, and writes its run folder."""

from __future__ import annotations

import csv
import json
import platform
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fer_core.checkpoint import load_checkpoint
from fer_core.data import eval_views
from fer_core.train import TrainConfig, run_finished, train
from fer_core.train.optim import Plateau, lr_factor

TINY = {"widths": (8, 16, 16, 16), "fc": 32}  # a VGGNet small enough to train in a second


def tiny_cfg(tmp_path, **kw) -> TrainConfig:
    base = dict(model_args=TINY, out=str(tmp_path), batch_size=7, epochs=2, augment="light", threads=1)
    return TrainConfig.from_recipe("vggnet", **{**base, **kw})


def _train_loss(model, faceset) -> float:
    cfg = model.default_cfg
    x = eval_views(faceset.images, cfg.input_size, cfg.crop, "none", cfg.mean, cfg.std)[0]
    model.eval()
    with torch.no_grad():
        return F.cross_entropy(model(x), faceset.labels).item()


def test_one_epoch_lowers_the_loss(tmp_path, mini_splits):
    torch.manual_seed(0)
    cfg = tiny_cfg(tmp_path, epochs=1, lr=0.01, augment="none", batch_size=3, warmup_epochs=0, schedule="constant")
    from fer_core.models import create_model

    torch.manual_seed(cfg.seed)
    before = _train_loss(create_model("vggnet", **TINY), mini_splits["Training"])
    run = train(cfg, mini_splits, progress=False)
    # the last epoch's weights live in the resume state; the best checkpoint is by PublicTest
    saved = torch.load(run / "resume.pt", weights_only=True)
    model = create_model("vggnet", **TINY)
    model.load_state_dict(saved["model"])
    assert _train_loss(model, mini_splits["Training"]) < before


def test_run_folder_contents(tmp_path, mini_splits):
    run = train(tiny_cfg(tmp_path), mini_splits, progress=False)
    rows = list(csv.DictReader((run / "log.csv").read_text().splitlines()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert set(rows[0]) == {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "images_per_s"}
    assert json.loads((run / "config.json").read_text())["model"] == "vggnet"
    model, meta = load_checkpoint(run / "best.safetensors")
    assert meta["model_args"]["fc"] == 32 and meta["classes"][0] == "angry"
    assert meta["metrics"]["PublicTest_accuracy"] == pytest.approx(max(float(r["val_acc"]) for r in rows), abs=1e-5)
    assert run_finished(run)


class _Killed(Exception):
    pass


def _kill_after_epoch(n: int):
    def hook(row: dict) -> None:
        if row["epoch"] >= n:
            raise _Killed  # the process dies right after the epoch boundary

    return hook


def test_interrupted_then_resumed_matches_uninterrupted(tmp_path, mini_splits):
    whole = train(tiny_cfg(tmp_path / "a", epochs=3, augment="strong"), mini_splits, progress=False)
    cfg = tiny_cfg(tmp_path / "b", epochs=3, augment="strong")
    with pytest.raises(_Killed):
        train(cfg, mini_splits, progress=False, on_epoch=_kill_after_epoch(1))
    torch.manual_seed(1234)  # whatever happened in between must not matter
    resumed = train(cfg, mini_splits, resume=True, progress=False)
    a = torch.load(whole / "resume.pt", weights_only=True)
    b = torch.load(resumed / "resume.pt", weights_only=True)
    assert len(b["state"]["history"]) == 3
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    drop = lambda h: [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")} for r in h]  # noqa: E731
    assert drop(a["state"]["history"]) == drop(b["state"]["history"])


def test_budget_stops_at_an_epoch_boundary(tmp_path, mini_splits):
    run = train(tiny_cfg(tmp_path, epochs=50, budget_minutes=1e-6), mini_splits, progress=False)
    history = torch.load(run / "resume.pt", weights_only=True)["state"]["history"]
    assert len(history) == 1  # the first epoch always runs; the second would exceed the budget
    assert not run_finished(run)


def test_early_stopping(tmp_path, mini_splits):
    run = train(tiny_cfg(tmp_path, epochs=30, lr=0.0, early_stop_patience=2), mini_splits, progress=False)
    state = torch.load(run / "resume.pt", weights_only=True)["state"]
    assert state["done"] and state["epoch"] == 3  # best at epoch 1, then two epochs without gain


def test_schedules():
    assert lr_factor("cosine", 0, 100, 10) == pytest.approx(0.1)
    assert lr_factor("cosine", 10, 100, 10) == pytest.approx(1.0)
    assert lr_factor("cosine", 99, 100, 10) < 0.01
    assert lr_factor("onecycle", 0, 100, 0) == pytest.approx(1 / 25)
    assert lr_factor("onecycle", 30, 100, 0) == pytest.approx(1.0)
    p = Plateau(factor=0.5, patience=1)
    for acc in (0.5, 0.4, 0.4):
        p.step(acc)
    assert p.scale == 0.5


def test_unknown_options_are_rejected():
    with pytest.raises(TypeError, match="unknown training option"):
        TrainConfig.from_recipe("vggnet", learning_rate=0.1)
    with pytest.raises(KeyError, match="registered models"):
        TrainConfig.from_recipe("resnet9000")


def test_ema_class_weights_smoothing_clipping_onecycle(tmp_path, mini_splits):
    cfg = tiny_cfg(
        tmp_path,
        epochs=1,
        ema_decay=0.9,
        class_weights=True,
        label_smoothing=0.1,
        grad_clip=1.0,
        batch_size=3,
        schedule="onecycle",
        optimizer="adamw",
        lr=3e-3,
    )
    run = train(cfg, mini_splits, progress=False)
    saved = torch.load(run / "resume.pt", weights_only=True)
    raw, ema = saved["model"], saved["ema"]
    assert any(not torch.equal(raw[k], ema[k]) for k in raw if raw[k].is_floating_point())
    best, meta = load_checkpoint(run / "best.safetensors")  # epoch 1 is always the best so far
    assert meta["train_config"]["ema_decay"] == 0.9
    assert all(torch.equal(best.state_dict()[k], ema[k].float()) for k in ema if ema[k].is_floating_point())
    assert saved["state"]["history"][-1]["lr"] < 0.2 * cfg.lr  # one-cycle has annealed by the last of 7 steps


@pytest.mark.parametrize(
    "name,head",
    [("vggnet", "classifier.7"), ("deep_emotion", "fc2"), ("sotaresemote_s", "classifier"), ("aer_cnn", "head.3")],
)
def test_frozen_backbone_trains_the_layer_that_makes_the_logits(name, head):
    """Not the last linear registered: Deep-Emotion's transformer regressor and SOTAResEmote's
    auxiliary head come after the classifier."""
    from fer_core.models import create_model
    from fer_core.train.loop import head_modules

    model = create_model(name)
    (found,) = head_modules(model)
    assert dict(model.named_modules())[head] is found


_FAULTS_SCRIPT = """
import resource, sys, torch
from fer_core.device import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def step():  # what a training step does: allocate big buffers, touch them, free them
    x = torch.ones(8 << 20)  # 32 MB
    return float(x.sum())
for _ in range(10):  # the heap grows to its steady size in the first few steps
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_training_processes_keep_freed_memory_instead_of_faulting_it_in_again():
    """Default glibc returns a freed 32 MB buffer to the kernel and faults it in again on the next step
    (8 000 faults a time); after keep_freed_memory() and a few steps of heap growth it is reused."""

    def faults(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", _FAULTS_SCRIPT, mode], capture_output=True, text=True, check=True)
        return int(out.stdout.strip().splitlines()[-1])

    assert faults("default") > 5 * 4000  # the test would pass vacuously if the default did not fault
    assert faults("keep") < 500


def test_cpu_autocast_is_bf16_only_where_the_cpu_does_bf16(monkeypatch):
    """On an AVX2-only CPU bf16 autocast falls back to slow reference kernels (measured: 1.1 against 25.4
    training images/s for sotaresemote_s): there the CPU runs float32 unless FER_CPU_BF16=1 forces bf16."""
    from fer_core.device import autocast, cpu_has_fast_bf16, precision_name, uses_amp

    cpu, conv = torch.device("cpu"), torch.nn.Conv2d(1, 2, 3)
    x = torch.randn(1, 1, 8, 8)

    def dtype_inside() -> torch.dtype:
        with autocast(cpu), torch.no_grad():
            return conv(x).dtype

    monkeypatch.delenv("FER_CPU_BF16", raising=False)
    assert uses_amp(cpu) == cpu_has_fast_bf16()
    assert dtype_inside() == (torch.bfloat16 if cpu_has_fast_bf16() else torch.float32)
    monkeypatch.setenv("FER_CPU_BF16", "1")
    assert dtype_inside() == torch.bfloat16 and precision_name(cpu) == "bf16 autocast"
    assert not uses_amp(cpu, enabled=False) and precision_name(cpu, False) == "float32"
    monkeypatch.setenv("FER_CPU_BF16", "0")
    assert dtype_inside() == torch.float32 and precision_name(cpu) == "float32"


def test_reports_are_float32_even_where_training_is_bf16(monkeypatch, mini_splits):
    """A report must reproduce on every machine, so evaluation ignores the CPU's bf16: with bf16 forced
    on, the report is float32 and its probabilities are float32's, not bf16's."""
    from fer_core.eval import evaluate_model, predict_probs
    from fer_core.models import create_model

    monkeypatch.setenv("FER_CPU_BF16", "1")
    torch.manual_seed(0)
    model = create_model("vggnet", widths=(8, 16, 16, 16), fc=32).eval()
    report, arrays = evaluate_model(model, mini_splits, ttas=("none",))
    assert report["precision"] == "float32"
    test = mini_splits["PrivateTest"].images
    fp32, bf16 = predict_probs(model, test, amp=False), predict_probs(model, test, amp=True)
    assert not torch.equal(fp32, bf16)  # else the check below could not tell the two apart
    assert np.array_equal(arrays["PrivateTest_none"], fp32.numpy().astype(np.float16))
