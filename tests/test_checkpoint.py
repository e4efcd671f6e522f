"""Checkpoints: exact round trip, atomic writes that survive kill -9, clear errors, no unpickling."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from conftest import ROOT
from fer_core.checkpoint import META_KEY, CheckpointError, load_checkpoint, model_meta, read_meta, save_checkpoint
from fer_core.models import create_model

TINY = {"widths": (8, 16, 16, 16), "fc": 32}


def _model(seed: int = 0):
    torch.manual_seed(seed)
    return create_model("vggnet", **TINY).eval()


def test_round_trip_gives_identical_logits(tmp_path):
    model = _model()
    x = torch.randn(4, 1, 40, 40)
    save_checkpoint(model, tmp_path / "m.safetensors", model_meta(model, epochs=3))
    loaded, meta = load_checkpoint(tmp_path / "m.safetensors")
    assert torch.equal(model(x), loaded(x))
    assert meta["epochs"] == 3 and meta["input"]["size"] == 40
    assert json.loads((tmp_path / "m.json").read_text()) == read_meta(tmp_path / "m.safetensors")


def test_fp16_weights_load_as_float32(tmp_path):
    model = _model()
    save_checkpoint(model, tmp_path / "h.safetensors", model_meta(model), dtype=torch.float16)
    loaded, meta = load_checkpoint(tmp_path / "h.safetensors")
    assert meta["weights_dtype"] == "float16" and next(loaded.parameters()).dtype == torch.float32
    assert os.path.getsize(tmp_path / "h.safetensors") < 0.6 * sum(p.numel() * 4 for p in model.parameters())


_SAVER = """
import sys, torch
sys.path.insert(0, {root!r})
from fer_core.checkpoint import save_checkpoint, model_meta
from fer_core.models import create_model
torch.manual_seed(1)
model = create_model("vggnet", widths=(8, 16, 16, 16), fc=4096)  # big enough for a slow write
print("ready", flush=True)
i = 0
while True:
    i += 1
    save_checkpoint(model, {path!r}, model_meta(model, epochs=i))
"""


def test_kill_during_save_leaves_a_loadable_checkpoint(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    old = _model()
    save_checkpoint(old, path, model_meta(old, epochs=0))
    for delay in (0.05, 0.13, 0.29, 0.41):
        proc = subprocess.Popen(
            [sys.executable, "-c", _SAVER.format(root=str(ROOT), path=str(path))], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        model, meta = load_checkpoint(path)  # never a broken file: the old one or a complete new one
        assert meta["model"] == "vggnet" and meta["model_args"]["fc"] in (32, 4096)


def test_failed_write_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "c.safetensors"
    model = _model()
    save_checkpoint(model, path, model_meta(model, epochs=1))

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("fer_core.checkpoint.save_file", disk_full)
    with pytest.raises(OSError):
        save_checkpoint(_model(1), path, model_meta(model, epochs=2))
    assert read_meta(path)["epochs"] == 1
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_truncated_file_is_named_in_the_error(tmp_path):
    path = tmp_path / "t.safetensors"
    model = _model()
    save_checkpoint(model, path, model_meta(model))
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=r"t\.safetensors"):
        load_checkpoint(path)


def test_unknown_architecture_and_mismatched_shapes(tmp_path):
    model = _model()
    meta = model_meta(model)
    bad_arch = tmp_path / "arch.safetensors"
    save_checkpoint(model, bad_arch, {**meta, "model": "not_a_model"})
    with pytest.raises(CheckpointError, match="arch.safetensors.*unknown model 'not_a_model'"):
        load_checkpoint(bad_arch)
    bad_shape = tmp_path / "shape.safetensors"
    save_checkpoint(model, bad_shape, {**meta, "model_args": {"widths": [8, 16, 16, 16], "fc": 64}})
    with pytest.raises(CheckpointError, match="shape.safetensors.*wrong shape"):
        load_checkpoint(bad_shape)
    no_meta = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(no_meta))
    with pytest.raises(CheckpointError, match="no FER Explorer description"):
        load_checkpoint(no_meta)
    json_broken = tmp_path / "json.safetensors"
    save_file({"w": torch.zeros(2)}, str(json_broken), metadata={META_KEY: "{not json"})
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(json_broken)


def test_a_pickle_is_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.safetensors"

    class Boom:
        def __reduce__(self):
            return (Path.touch, (marker,))

    import pickle

    evil.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(CheckpointError):
        load_checkpoint(evil)
    torch.save({"x": Boom()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()
