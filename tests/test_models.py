"""Every registered model, through one set of tests: the loops run over ``list_models()``, so a new
builder is covered as soon as it registers (and ``test_tables_cover_the_registry`` asks for its rows in
the two tables below).

Kept to about two minutes on two busy CPU cores: one thread, small batches, native 48 px inputs.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from fer_core.checkpoint import load_checkpoint, model_meta, save_checkpoint
from fer_core.data import CLASSES
from fer_core.models import ModelOutput, create_model, get_recipe, list_models, model_entry, split_output
from fer_core.models.base import FERModel

ROOT = Path(__file__).resolve().parent.parent
MODELS = list_models()

# Parameter counts in millions, (low, high). Tight on purpose: leaving the range means the architecture
# changed, and the docstrings and the measured table must change with it.
PARAM_RANGES: dict[str, tuple[float, float]] = {
    "aer_cnn": (1.25, 1.33),  # 1.290 M
    "deep_emotion": (0.066, 0.068),  # 66,867
    "drf_msam": (1.20, 1.28),  # 1.237 M
    "lobo_net": (31.5, 32.5),  # 32.1 M
    "lobo_net_2conv": (37.0, 38.5),  # 37.8 M
    "lobo_net_2conv_bn": (37.0, 38.5),
    "lobo_net_2conv_bn_dropout": (37.0, 38.5),
    "msff_cnn": (1.50, 1.62),  # 1.566 M
    "sotaresemote_s": (13.0, 13.8),  # 13.36 M
    "sotaresemote_m": (23.0, 24.0),  # 23.47 M
    "sotaresemote_l": (30.0, 31.0),  # 30.45 M
    "vggnet": (29.5, 30.3),  # 29.9 M
}

_ANCHORS = {f"anchor{i}" for i in range(8)}
_SOTA = {"cbam2", "cbam3", "cbam4", "region_upper", "region_lower", "region"} | _ANCHORS
ATTENTION_NAMES: dict[str, set[str]] = {
    "aer_cnn": {"block2", "block3", "block4"},
    "deep_emotion": {"stn_warped", "stn_grid"},
    "drf_msam": {f"msam{k}" for k in (1, 2, 3)} | {f"drf{k}_d{d}" for k in (1, 2, 3) for d in (1, 2, 3)},
    "lobo_net": set(),
    "lobo_net_2conv": set(),
    "lobo_net_2conv_bn": set(),
    "lobo_net_2conv_bn_dropout": set(),
    "msff_cnn": set(),
    "sotaresemote_s": _SOTA,
    "sotaresemote_m": _SOTA,
    "sotaresemote_l": _SOTA,
    "vggnet": set(),
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One thread (conftest's session fixture sets two): the CPU is shared, and oversubscribed OpenMP
    threads spin instead of working."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _batch(model: torch.nn.Module, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    s = model.default_cfg.input_size
    return torch.randn(n, 1, s, s, generator=g), torch.randint(0, len(CLASSES), (n,), generator=g)


def _loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """What the training loop minimises: CE + weighted auxiliary CEs + the model's own penalty."""
    logits, aux = split_output(model(x))
    loss = F.cross_entropy(logits, y)
    for weight, aux_logits in aux.values():
        loss = loss + weight * F.cross_entropy(aux_logits, y)
    return loss + model.regularization_loss()


def test_tables_cover_the_registry():
    assert set(PARAM_RANGES) == set(MODELS), "add the new model to PARAM_RANGES"
    assert set(ATTENTION_NAMES) == set(MODELS), "add the new model to ATTENTION_NAMES"


@pytest.mark.parametrize("name", MODELS)
def test_registry_entry(name):
    entry = model_entry(name)
    assert entry.summary
    assert isinstance(create_model(name), FERModel)
    recipe = get_recipe(name)
    from fer_core.data import PRESETS

    assert recipe.augment in PRESETS
    if name not in ("lobo_net_2conv", "lobo_net_2conv_bn", "lobo_net_2conv_bn_dropout"):  # ablations
        assert entry.published, "say what the source published and on which split"


@pytest.mark.parametrize("name", MODELS)
def test_output_shape(name):
    torch.manual_seed(0)
    model = create_model(name)
    x, _ = _batch(model, 3)
    model.train()
    logits, aux = split_output(model(x))
    assert logits.shape == (3, len(CLASSES))
    for weight, aux_logits in aux.values():
        assert weight > 0 and aux_logits.shape == (3, len(CLASSES))
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert not isinstance(out, ModelOutput), "eval mode returns plain logits"
    assert out.shape == (3, len(CLASSES)) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", MODELS)
def test_parameter_count(name):
    n = sum(p.numel() for p in create_model(name).parameters()) / 1e6
    low, high = PARAM_RANGES[name]
    assert low <= n <= high, f"{name}: {n:.3f} M parameters, expected {low}-{high} M"


@pytest.mark.parametrize("name", MODELS)
def test_gradient_reaches_every_parameter(name):
    """Every parameter is in the graph, and after one optimizer step every gradient is non-zero.

    The step comes first because some layers start at zero on purpose and block the gradient upstream
    at step 0: the spatial transformer's regressor (identity init) and the last batch norm of timm's
    residual blocks (zero-init-last)."""
    torch.manual_seed(0)
    model = create_model(name).train()
    x, y = _batch(model, 4)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    _loss(model, x, y).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient reaches {missing[:5]}"
    opt.step()
    opt.zero_grad()
    _loss(model, x, y).backward()
    zero = [n for n, p in model.named_parameters() if not (torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0)]
    assert not zero, f"zero or non-finite gradient for {zero[:5]}"


@pytest.mark.parametrize("name", MODELS)
def test_twenty_steps_lower_the_loss(name):
    """Twenty Adam steps on one fixed batch must fit it better. The loss is measured in training mode
    with the same random seed before and after, so dropout draws the same masks both times."""
    torch.manual_seed(0)
    model = create_model(name).train()
    x, y = _batch(model, 4)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)

    def measured() -> float:
        torch.manual_seed(1234)
        with torch.no_grad():
            return float(_loss(model, x, y))

    before = measured()
    for _ in range(20):
        opt.zero_grad()
        _loss(model, x, y).backward()
        opt.step()
    after = measured()
    assert math.isfinite(after) and after < 0.9 * before, f"{name}: loss {before:.3f} -> {after:.3f}"


@pytest.mark.parametrize("name", MODELS)
def test_attention_maps(name):
    torch.manual_seed(0)
    model = create_model(name).train()
    x, _ = _batch(model, 2)
    maps = model.attention_maps(x)
    assert model.training, "attention_maps must restore the training mode"
    assert set(maps) == ATTENTION_NAMES[name]
    for key, m in maps.items():
        assert m.dim() == 4 and m.shape[:2] == (2, 1) and min(m.shape[2:]) >= 1, f"{key}: shape {tuple(m.shape)}"
        assert m.dtype == torch.float32 and not m.requires_grad, key
        assert torch.isfinite(m).all() and m.min() >= 0 and m.max() <= 1, f"{key} outside [0, 1]"


@pytest.mark.parametrize("name", MODELS)
def test_eval_is_deterministic(name):
    """No dropout (or anything random) left on at evaluation: the Deep-Emotion port's bug."""
    torch.manual_seed(0)
    model = create_model(name).eval()
    x, _ = _batch(model, 2)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


@pytest.mark.parametrize("name", MODELS)
def test_last_conv_layer_gives_a_feature_map(name):
    """Grad-CAM hooks ``last_conv_layer()``: its output must be a multi-channel spatial map (not a
    one-channel attention mask) that the logits depend on."""
    model = create_model(name).eval()
    x, _ = _batch(model, 1)
    layer = model.last_conv_layer()
    seen = []
    handle = layer.register_forward_hook(lambda m, i, o: seen.append(o))
    try:
        model(x)
    finally:
        handle.remove()
    assert seen, "last_conv_layer() is not used in forward"
    out = seen[-1]
    assert out.dim() == 4 and out.shape[1] > 1 and out.requires_grad


@pytest.mark.parametrize("name", MODELS)
def test_checkpoint_round_trip(name, tmp_path):
    torch.manual_seed(0)
    model = create_model(name)
    x, _ = _batch(model, 2)
    model.train()
    with torch.no_grad():
        model(x)  # move the batch-norm running statistics away from their initial values
    model.eval()
    with torch.no_grad():
        expected = model(x)
    save_checkpoint(model, tmp_path / "m.safetensors", model_meta(model, epochs=0))
    loaded, meta = load_checkpoint(tmp_path / "m.safetensors")
    assert meta["model"] == name and not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(x), expected)


def test_spatial_transformer_is_the_identity_at_initialisation():
    torch.manual_seed(0)
    model = create_model("deep_emotion").train()
    x, _ = _batch(model, 3)
    theta = model.stn.theta(x)
    assert torch.equal(theta, torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).expand(3, 2, 3))
    warped, grid = model.stn.forward_with_grid(x)
    torch.testing.assert_close(warped, x, atol=1e-5, rtol=1e-5)
    maps = model.attention_maps(x)
    cfg = model.default_cfg
    torch.testing.assert_close(maps["stn_warped"], (x * cfg.std + cfg.mean).clamp(0, 1), atol=1e-5, rtol=0)
    assert maps["stn_grid"][:, :, ::6, ::6].eq(1).all(), "the identity draws the plain lattice"
    assert model.sampling_grid(x).shape == (3, 48, 48, 2)


def test_deep_emotion_penalises_the_classifier_weights():
    model = create_model("deep_emotion")
    expected = model.fc_l2 * (model.fc1.weight.pow(2).sum() + model.fc2.weight.pow(2).sum())
    torch.testing.assert_close(model.regularization_loss(), expected)
    assert float(create_model("deep_emotion", fc_l2=0.0).regularization_loss()) == 0.0


def test_drf_branch_maps_and_weights():
    model = create_model("drf_msam")
    x, _ = _batch(model, 2)
    maps = model.attention_maps(x)
    for k in (1, 2, 3):
        total = sum(maps[f"drf{k}_d{d}"] for d in (1, 2, 3))
        torch.testing.assert_close(total, torch.ones_like(total), atol=1e-4, rtol=0)
    weights = model.drf_weights(x)
    assert [tuple(w.shape) for w in weights.values()] == [(2, 3, 64), (2, 3, 128), (2, 3, 256)]
    torch.testing.assert_close(weights["drf1"].sum(1), torch.ones(2, 64), atol=1e-5, rtol=0)


def test_sotaresemote_input_size_is_a_parameter(tmp_path):
    """A non-default input size changes ``default_cfg`` and survives a checkpoint."""
    model = create_model("sotaresemote_s", input_size=64, stem_stride=4, output_stride=32).eval()
    assert model.default_cfg.input_size == 64
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        expected = model(x)
    assert set(model.attention_maps(x)) == _SOTA
    save_checkpoint(model, tmp_path / "m.safetensors", model_meta(model))
    loaded, meta = load_checkpoint(tmp_path / "m.safetensors")
    assert meta["input"]["size"] == 64 and loaded.default_cfg.input_size == 64
    with torch.no_grad():
        assert torch.equal(loaded(x), expected)


# ---- train_all end to end, on a tiny FER2013 folder ------------------------------------------------


def _load_train_all():
    spec = importlib.util.spec_from_file_location("train_all", ROOT / "scripts" / "train_all.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_fer2013(tmp_path_factory) -> Path:
    """FER2013 in the Kaggle layout: random 48x48 grey PNGs, 4 per class for Training (the 28 faces the runs
    train on) and 2 per class for each test split (the final evaluation runs ten-crop on those)."""
    root = tmp_path_factory.mktemp("fer2013")
    rng = np.random.default_rng(0)
    for split, prefixes, per_class in (("train", ("Training",), 4), ("test", ("PublicTest", "PrivateTest"), 2)):
        for cls in CLASSES:
            folder = root / split / cls
            folder.mkdir(parents=True)
            for prefix in prefixes:
                for i in range(per_class):
                    pixels = rng.integers(0, 256, (48, 48), dtype=np.uint8)
                    Image.fromarray(pixels, mode="L").save(folder / f"{prefix}_{cls}{i}.png")
    return root


@pytest.mark.parametrize("name", MODELS)
def test_train_all_runs_one_epoch(name, tiny_fer2013, tmp_path, monkeypatch):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    train_all = _load_train_all()
    out = tmp_path / "runs"
    argv = ["--models", name, "--epochs", "1", "--data", str(tiny_fer2013), "--out", str(out)]
    argv += ["--no-progress", "--max-train-samples", "28", "--threads", "1"]
    assert train_all.main(argv) == 0
    assert (out / name / "best.safetensors").is_file()
    assert len((out / name / "log.csv").read_text().strip().splitlines()) == 2  # header + one epoch
    assert name in (out / "summary.md").read_text()
