"""Beyond accuracy: corruptions (identity at severity 0, stronger with severity, reproducible),
calibration (ECE of calibrated and over-confident synthetic predictors, temperature scaling on held-out
data), the stored report and temperature (weights byte-identical), calibrated probabilities in
inference, cross-dataset evaluation of a fixture folder with a missing class, evaluation jobs, and the
shipped reports (against the real PrivateTest when FER2013_DIR is set)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score

from conftest import FIXTURES, MINI_FOLDER, stop_jobs, use_precision_of
from fer_core.checkpoint import load_checkpoint, save_checkpoint
from fer_core.data import FER2013_SIZES
from fer_core.demo import load_demo
from fer_core.eval.calibration import (
    apply_temperature,
    ece,
    fit_temperature,
    nll,
    reliability_bins,
    stored_temperature,
    temperature_scale,
)
from fer_core.eval.corruptions import CORRUPTIONS, corrupt, list_corruptions, register
from fer_core.eval.crossdata import load_crossdata, load_face_folder, transfer_metrics
from fer_core.eval.predict import predict_logits, predict_probs
from fer_core.eval.robustness import (
    checkpoint_temperature,
    compute_and_store,
    corruption_gallery,
    load_robustness,
    made_for,
    robustness_report,
    weights_digest,
)
from fer_core.zoo import list_checkpoints

CROSS = FIXTURES / "crossdata_mini"
K = 7


@pytest.fixture(scope="module")
def faces() -> torch.Tensor:
    return load_demo().images[:120]


# ---- corruptions -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list_corruptions())
def test_severity_zero_is_the_identity(name, faces):
    assert torch.equal(corrupt(faces, name, 0), faces)
    x = faces.unsqueeze(1).float() / 255  # the registered function itself, on floats
    c = CORRUPTIONS[name]
    assert torch.allclose(c.fn(x, c.params[0], torch.Generator().manual_seed(0)), x, atol=1e-6)


@pytest.mark.parametrize("name", list_corruptions())
def test_corruptions_get_stronger_with_severity(name, faces):
    change = [float((corrupt(faces, name, s).float() - faces.float()).abs().mean()) for s in range(6)]
    assert change[0] == 0
    assert all(a < b for a, b in zip(change, change[1:], strict=False)), change
    out = corrupt(faces, name, 5)
    assert out.dtype == torch.uint8 and out.shape == faces.shape


def test_corruptions_are_reproducible_and_seeded(faces):
    for name in list_corruptions():
        assert torch.equal(corrupt(faces, name, 3), corrupt(faces, name, 3)), name
    assert not torch.equal(corrupt(faces, "gaussian_noise", 3, seed=0), corrupt(faces, "gaussian_noise", 3, seed=1))


def test_occlusions_cover_the_eyes_and_the_mouth(faces):
    eyes = corrupt(faces, "occlusion_eyes", 3)[0]
    mouth = corrupt(faces, "occlusion_mouth", 3)[0]
    assert (eyes[16:20, 12:36] == 0).all() and not (eyes[40:] == 0).all()
    assert (mouth[36:40, 16:32] == 204).all() and torch.equal(mouth[:30], faces[0][:30])


def test_registry_refuses_mistakes(faces):
    with pytest.raises(ValueError, match="already registered"):
        register("jpeg", (None,) * 6, "x", "x")(lambda x, level, g: x)
    with pytest.raises(ValueError, match="six parameters"):
        register("new_one", (0, 1), "x", "x")(lambda x, level, g: x)
    with pytest.raises(KeyError, match="unknown corruption"):
        corrupt(faces, "fog", 1)
    with pytest.raises(ValueError, match="severity"):
        corrupt(faces, "jpeg", 6)


# ---- calibration ------------------------------------------------------------------------------------------
def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A perfectly calibrated predictor by construction: confidence c on its predicted class, the rest
    spread evenly, and the true label equal to the prediction with probability exactly c."""
    rng = np.random.default_rng(seed)
    conf = rng.uniform(1 / K + 0.01, 0.99, n)
    pred = rng.integers(0, K, n)
    other = (pred + rng.integers(1, K, n)) % K
    labels = np.where(rng.uniform(size=n) < conf, pred, other)
    probs = np.repeat(((1 - conf) / (K - 1))[:, None], K, 1)
    probs[np.arange(n), pred] = conf
    return probs, labels


def test_ece_of_a_calibrated_predictor_is_about_zero():
    probs, labels = synthetic(100_000, 0)
    assert ece(probs, labels) < 0.01


def test_ece_of_an_over_confident_predictor_is_large():
    probs, labels = synthetic(100_000, 0)
    sharp = apply_temperature(np.log(probs), 1 / 3)  # logits x3: same predictions, far surer
    assert (sharp.argmax(1) == probs.argmax(1)).all()
    assert ece(sharp, labels) > 0.2
    assert ece(sharp, labels) > 20 * ece(probs, labels)


def test_temperature_scaling_lowers_nll_on_held_out_data():
    probs, labels = synthetic(40_000, 1)
    logits = 3 * np.log(probs)  # over-confident
    t = fit_temperature(logits[:20_000], labels[:20_000])
    held_logits, held_labels = logits[20_000:], labels[20_000:]
    before, after = (
        nll(apply_temperature(held_logits, 1), held_labels),
        nll(apply_temperature(held_logits, t), held_labels),
    )
    assert t == pytest.approx(3.0, rel=0.05)
    assert after < before - 0.1
    assert ece(apply_temperature(held_logits, t), held_labels) < 0.02


def test_reliability_bins_and_nll_by_hand():
    probs = np.array([[0.95, 0.05], [0.9, 0.1], [0.4, 0.6], [0.55, 0.45]])
    labels = np.array([0, 1, 1, 0])
    bins = reliability_bins(probs, labels, n_bins=10)
    assert sum(bins["count"]) == 4 and bins["count"][9] == 1 and bins["count"][8] == 1
    assert bins["accuracy"][8] == 0.0 and bins["accuracy"][9] == 1.0 and bins["accuracy"][0] is None
    assert nll(probs, labels) == pytest.approx(-np.mean(np.log([0.95, 0.1, 0.6, 0.55])))
    expected = (abs(1 - 0.95) + abs(0 - 0.9) + abs(1 - 0.6) + abs(1 - 0.55)) / 4  # one face per bin
    assert ece(probs, labels, n_bins=10) == pytest.approx(expected)


def test_temperature_scale_of_probabilities_is_softmax_of_scaled_logits():
    z = torch.randn(50, K) * 4
    probs = F.softmax(z, 1).numpy()
    assert np.allclose(temperature_scale(probs, 2.5), F.softmax(z / 2.5, 1).numpy(), atol=1e-5)
    assert np.allclose(temperature_scale(probs[0], 2.5), F.softmax(z[0] / 2.5, 0).numpy(), atol=1e-5)
    assert np.array_equal(temperature_scale(probs, None), probs)
    assert stored_temperature({"calibration": {"temperature": 1.7}}) == 1.7
    assert stored_temperature({}) is None and stored_temperature(None) is None


# ---- the stored report --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_report(zoo_root, mini_splits, tmp_path_factory):
    """alpha of the fixture zoo, copied, with its robustness report computed on the mini FER2013."""
    folder = tmp_path_factory.mktemp("rb") / "alpha"
    shutil.copytree(zoo_root / "alpha", folder)
    report = compute_and_store(folder / "model.safetensors", mini_splits, batch_size=16)
    return folder, report


def test_report_is_complete_and_consistent(tiny_report, mini_splits):
    folder, report = tiny_report
    model, meta = load_checkpoint(folder / "model.safetensors")
    private = mini_splits["PrivateTest"]
    acc = float((predict_probs(model, private.images).argmax(1) == private.labels).float().mean())
    assert report["clean"]["accuracy"] == pytest.approx(acc)
    assert report["n"] == len(private) and report["model"] == "alpha"
    assert list(report["corruptions"]) == list_corruptions()
    cells = [a for row in report["corruptions"].values() for a in row["accuracy"]]
    assert len(cells) == 50 and report["mean_corruption_accuracy"] == pytest.approx(np.mean(cells))
    cal = report["calibration"]
    assert cal["temperature"] > 0 and cal["fit"]["nll_after"] <= cal["fit"]["nll_before"] + 1e-9
    assert sum(cal["before"]["bins"]["count"]) == len(private)
    # stored: the json beside the checkpoint, tied to these weights (the returned report, without the
    # digest, is not); the temperature is read from it
    assert load_robustness(folder) == json.loads((folder / "robustness.json").read_text())
    assert load_robustness(folder)["weights_digest"] == weights_digest(folder / "model.safetensors")
    assert checkpoint_temperature(folder / "model.safetensors", meta) == pytest.approx(cal["temperature"])
    from fer_core.inference import load_models

    assert load_models(folder)[0].temperature == pytest.approx(cal["temperature"])
    stored = load_robustness(folder)
    assert made_for(stored, folder / "model.safetensors") and not made_for(report, folder / "model.safetensors")


def test_computing_a_report_leaves_the_weights_file_alone(zoo_root, mini_splits, tmp_path):
    """A temperature lives in robustness.json: rewriting the weights file's header would make git keep a
    second copy of every shipped weights file."""
    folder = tmp_path / "beta"
    shutil.copytree(zoo_root / "beta", folder)
    weights = folder / "model.safetensors"
    before = (weights.read_bytes(), (folder / "model.json").read_bytes())
    compute_and_store(weights, mini_splits, corruptions=["gaussian_noise"], batch_size=16)
    assert (weights.read_bytes(), (folder / "model.json").read_bytes()) == before
    assert checkpoint_temperature(weights) == pytest.approx(load_robustness(folder)["calibration"]["temperature"])


def test_a_report_for_other_weights_gives_no_temperature(tiny_report, tmp_path):
    """Re-shipped weights with the old report beside them: calibrating with its temperature would be
    calibrating another model. A temperature an older checkpoint holds in its sidecar still counts."""
    folder, report = tiny_report
    other = tmp_path / "alpha"
    shutil.copytree(folder, other)
    weights = other / "model.safetensors"
    model, meta = load_checkpoint(weights)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    save_checkpoint(model, weights, meta)
    assert not made_for(load_robustness(other), weights)  # the page offers to recompute it
    assert checkpoint_temperature(weights, meta) is None
    assert checkpoint_temperature(weights, {**meta, "calibration": {"temperature": 1.3}}) == 1.3
    (other / "robustness.json").write_text("{not json")
    assert checkpoint_temperature(weights, meta) is None


def test_corruption_accuracy_is_reproducible(tiny_report, mini_splits):
    folder, report = tiny_report
    model, _ = load_checkpoint(folder / "model.safetensors")
    again = robustness_report(model, mini_splits, corruptions=["gaussian_noise", "rotation"], batch_size=5)
    for name in ("gaussian_noise", "rotation"):
        assert again["corruptions"][name]["accuracy"] == report["corruptions"][name]["accuracy"]


def test_calibrated_probabilities_in_inference(tiny_report):
    from fer_core.faces import WholeImage
    from fer_core.faces.crop import read_image
    from fer_core.inference import FaceOptions, analyse_image, classify_faces, load_models

    folder, report = tiny_report
    (m,) = load_models(str(folder))
    assert m.temperature == pytest.approx(report["calibration"]["temperature"], abs=1e-6)
    crops = load_demo().images[:6].numpy()
    raw, cal = classify_faces(crops, [m])[m.name], classify_faces(crops, [m], calibrated=True)[m.name]
    assert (raw.argmax(1) == cal.argmax(1)).all() and not np.allclose(raw, cal)
    logits = predict_logits(m.model, torch.from_numpy(crops))
    assert np.allclose(cal, F.softmax(logits / m.temperature, 1).numpy(), atol=1e-4)
    img = read_image(np.kron(crops[0], np.ones((4, 4), dtype=np.uint8)))
    result = analyse_image(img, [m], WholeImage(), FaceOptions(calibrated=True))
    plain = analyse_image(img, [m], WholeImage(), FaceOptions())
    assert not np.allclose(result.faces[0].probs[m.name], plain.faces[0].probs[m.name])


def test_gallery_has_every_corruption(faces):
    g = corruption_gallery(faces[0].numpy(), 4)
    assert list(g) == ["clean", *list_corruptions()]
    assert np.array_equal(g["clean"], faces[0].numpy()) and not np.array_equal(g["jpeg"], g["clean"])


# ---- cross-dataset ------------------------------------------------------------------------------------------
def test_fixture_folder_with_a_missing_class(tiny_report):
    data = load_face_folder(CROSS)
    assert data.faces.class_counts() == [3, 0, 2, 3, 2, 2, 2]  # no disgust; the photos add one angry, one happy
    assert (data.precropped, data.detected, data.no_face) == (12, 2, ["neutral/photo_no_face.jpg"])
    assert any("contempt" in n for n in data.notes) and any("no face found" in n for n in data.notes)
    from fer_core.eval.crossdata import crossdata_report

    folder, _ = tiny_report
    model, meta = load_checkpoint(folder / "model.safetensors")
    r = crossdata_report(model, data, checkpoint_temperature(folder / "model.safetensors", meta))
    labels = data.faces.labels.numpy()
    probs = predict_probs(model, data.faces.images).numpy()
    present = [0, 2, 3, 4, 5, 6]
    assert r["classes_left_out"] == ["disgust"] and "disgust" not in r["per_class"]
    assert r["accuracy"] == pytest.approx((probs.argmax(1) == labels).mean())
    assert r["macro_f1"] == pytest.approx(f1_score(labels, probs.argmax(1), labels=present, average="macro"))
    restricted = np.array(present)[probs[:, present].argmax(1)]
    assert r["accuracy_present_classes"] == pytest.approx((restricted == labels).mean())
    assert r["faces"] == {"precropped": 12, "detected": 2, "no_face": 1}
    assert r["calibration"]["after"] is not None


def test_photo_faces_are_cropped_like_predict(tiny_report):
    """A photo's face reaches the model as fer_core.predict would crop it: the same 48x48 crop."""
    from fer_core.inference import predict

    folder, _ = tiny_report
    data = load_face_folder(CROSS, faces="detect")
    i = data.faces.names.index("happiness/photo_happy.jpg")
    result = predict(CROSS / "happiness" / "photo_happy.jpg", models=str(folder))
    assert np.array_equal(result.faces[0].crop, data.faces.images[i].numpy())


def test_transfer_metrics_leave_absent_classes_out():
    labels = np.array([0, 0, 3, 3])
    probs = np.full((4, K), 0.01)
    probs[[0, 1, 2, 3], [0, 1, 3, 0]] = 0.9  # face 1 is called disgust (absent), face 3 angry
    probs[1, 3] = 0.05  # among the present classes face 1 is closer to happy than to angry
    r = transfer_metrics(probs, labels)
    assert r["classes_present"] == ["angry", "happy"] and len(r["classes_left_out"]) == 5
    assert r["accuracy"] == 0.5 and r["accuracy_present_classes"] == 0.5
    assert set(r["per_class"]) == {"angry", "happy"}
    assert r["macro_f1"] == pytest.approx(f1_score(labels, probs.argmax(1), labels=[0, 3], average="macro"))


def test_cropped_mode_and_a_wrong_folder(tmp_path):
    from fer_core.data import DataError

    data = load_face_folder(CROSS, faces="cropped")  # every image resized as it is, photos too
    assert len(data.faces) == 15 and data.detected == 0
    with pytest.raises(DataError):
        load_face_folder(tmp_path / "nowhere")
    with pytest.raises(ValueError):
        load_face_folder(CROSS, faces="guess")


# ---- evaluation jobs ------------------------------------------------------------------------------------------
@pytest.fixture
def jobs(monkeypatch, tmp_path):
    from fer_core.jobs import JobRunner

    monkeypatch.setenv("FER_JOBS_DIR", str(tmp_path / "jobs"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("FER_JOBS_SLOW_BATCH_S", raising=False)
    runner = JobRunner()
    yield runner
    stop_jobs(runner)


@pytest.mark.slow
def test_evaluation_jobs_run_in_the_background(jobs, zoo_root, tmp_path):
    from fer_core.jobs import JobError, JobSpec

    folder = tmp_path / "beta"
    shutil.copytree(zoo_root / "beta", folder)
    weights = str(folder / "model.safetensors")
    with pytest.raises(JobError, match="does not exist"):
        jobs.submit(JobSpec(name="x", kind="crossdata", base=weights, data_path=str(tmp_path / "no"), register=False))
    with pytest.raises(JobError, match="register"):
        jobs.submit(JobSpec(name="x", kind="crossdata", base=weights, data_path=str(CROSS)))
    report = jobs.submit(
        JobSpec(name="rb", kind="robustness", base=weights, data_path=str(MINI_FOLDER), register=False, threads=1)
    )
    cross = jobs.submit(
        JobSpec(name="cd", kind="crossdata", base=weights, data_path=str(CROSS), register=False, threads=1)
    )
    with pytest.raises(JobError, match="the same evaluation is already"):  # a double click queues it once
        jobs.submit(JobSpec(name="cd2", kind="crossdata", base=weights, data_path=str(CROSS), register=False))
    report, cross = jobs.wait(report.id, timeout=240), jobs.wait(cross.id, timeout=240)
    assert report.state == "finished", (report.error, report.log_tail())
    assert cross.state == "finished", (cross.error, cross.log_tail())
    stored = load_robustness(folder)
    assert stored is not None and report.result["mean corruption accuracy"] == stored["mean_corruption_accuracy"]
    assert checkpoint_temperature(weights) == pytest.approx(stored["calibration"]["temperature"])
    x = load_crossdata(folder)["crossdata_mini"]
    assert x["classes_left_out"] == ["disgust"] and cross.result["classes_left_out"] == ["disgust"]
    assert x["calibration"]["after"] is not None  # the temperature the first job stored was used


# ---- the shipped reports -----------------------------------------------------------------------------------
SHIPPED = [e for e in list_checkpoints() if e.ok and (e.folder / "robustness.json").is_file()]


def test_some_shipped_checkpoint_has_a_robustness_report():
    assert SHIPPED, "run python scripts/compute_robustness.py for the shipped checkpoints"


@pytest.mark.parametrize("entry", SHIPPED, ids=[e.name for e in SHIPPED])
def test_shipped_robustness_report_matches_its_checkpoint(entry):
    r = load_robustness(entry.folder)
    assert r["weights_digest"] == weights_digest(entry.weights) and made_for(r, entry.weights)
    # the same faces as the checkpoint's report: to 0.1 points in the same precision, else up to 7 faces apart
    # (reports from before they said their precision were bf16)
    same = r.get("precision", "bf16 autocast") == entry.report.get("precision", "bf16 autocast")
    acc = entry.report["splits"]["PrivateTest"]["none"]["accuracy"]
    assert r["clean"]["accuracy"] == pytest.approx(acc, abs=0.001 if same else 0.002)
    # every page calibrates with this report's temperature; an older sidecar's one is superseded (the same
    # model's, but maybe fitted in another precision: deep_emotion's bf16 0.931 against float32's 0.927)
    assert checkpoint_temperature(entry.weights, entry.meta) == pytest.approx(r["calibration"]["temperature"])
    if stored_temperature(entry.meta) is not None:
        assert stored_temperature(entry.meta) == pytest.approx(r["calibration"]["temperature"], abs=0.01)
    assert list(r["corruptions"]) == list_corruptions() and r["n"] == FER2013_SIZES["PrivateTest"]
    assert all(len(row["accuracy"]) == 5 for row in r["corruptions"].values())


@pytest.mark.fer2013
def test_shipped_robustness_reproduces_on_fer2013(fer2013_dir, monkeypatch):
    """The smallest shipped model's calibration and two corruption cells, recomputed on the real data."""
    from fer_core.data import load_fer2013
    from fer_core.eval.calibration import calibration_report
    from fer_core.eval.robustness import corruption_grid

    if not SHIPPED:
        pytest.skip("no shipped robustness report")
    entry = min(SHIPPED, key=lambda e: e.weights.stat().st_size)
    stored = load_robustness(entry.folder)
    use_precision_of(stored, monkeypatch)
    splits = load_fer2013(fer2013_dir)
    model, _ = load_checkpoint(entry.weights)
    val, test = splits["PublicTest"], splits["PrivateTest"]
    cal = calibration_report(
        predict_logits(model, val.images), val.labels, predict_logits(model, test.images), test.labels
    )
    assert cal["temperature"] == pytest.approx(stored["calibration"]["temperature"], abs=0.01)
    for when in ("before", "after"):
        assert cal[when]["ece"] == pytest.approx(stored["calibration"][when]["ece"], abs=0.003)
        assert cal[when]["nll"] == pytest.approx(stored["calibration"][when]["nll"], abs=0.003)
    grid = corruption_grid(model, test, ["gaussian_blur", "occlusion_eyes"], severities=[3])
    for name, row in grid.items():
        assert row["accuracy"][0] == pytest.approx(stored["corruptions"][name]["accuracy"][2], abs=0.002), name


def test_severity_curves_label_their_axes():
    from fer_core.viz import severity_curves

    names = [f"c{i}" for i in range(7)]  # two rows of panels
    report = {
        "clean": {"accuracy": 0.6},
        "corruptions": {n: {"title": n, "severities": [1, 2, 3, 4, 5], "accuracy": [0.5] * 5} for n in names},
    }
    fig = severity_curves({"m": report})
    x_titles = [fig.layout[k].title.text for k in fig.layout if k.startswith("xaxis")]
    y_titles = [fig.layout[k].title.text for k in fig.layout if k.startswith("yaxis")]
    assert x_titles.count("severity (0: clean)") == 5  # under each panel of the bottom row, nowhere else
    assert y_titles.count("accuracy") == 2  # left of each row
