"""The dashboard's logic in fer_core: zoo listing, saved predictions, ensembles, runs, figures, demo sample."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fer_core.compare import (
    Predictions,
    align,
    cell_indices,
    disagreements,
    ensemble,
    greedy_ensemble,
    index_by_name,
    load_predictions,
    top_k,
)
from fer_core.data import CLASSES
from fer_core.demo import DEMO_PATH, load_demo, one_of_each_class
from fer_core.models import create_model
from fer_core.runs import list_runs, optimizer_schedule_grid, runs_table
from fer_core.viz import (
    LABEL_PLACES,
    accuracy_latency_scatter,
    clicked_cell,
    confusion_matrix_figure,
    job_curves,
    label_positions,
    mean_faces,
    settings_parallel_coordinates,
)
from fer_core.zoo import (
    checkpoints_root,
    list_checkpoints,
    model_zoo_text,
    parameter_count,
    render_model_zoo,
    zoo_table,
)

TINY = {"widths": (8, 16, 16, 16), "fc": 32}


def test_zoo_lists_good_and_broken_checkpoints(zoo_root):
    entries = {e.name: e for e in list_checkpoints(zoo_root)}
    assert set(entries) == {"alpha", "beta", "broken", "pickled"}
    assert entries["alpha"].ok and entries["alpha"].report is not None
    assert "broken" in entries["broken"].error and "never loaded" in entries["pickled"].error
    table = zoo_table(list(entries.values())).set_index("model")
    model = create_model("vggnet", **TINY)
    n_params = sum(p.numel() for p in model.parameters())
    assert parameter_count(entries["alpha"].weights) == n_params
    assert table.loc["alpha", "params (M)"] == round(n_params / 1e6, 2)
    acc = json.loads((zoo_root / "alpha" / "report.json").read_text())["splits"]["PrivateTest"]["none"]["accuracy"]
    assert table.loc["alpha", "PrivateTest acc"] == round(100 * acc, 2)
    assert table.loc["broken", "status"].startswith("broken")


def test_saved_predictions_reproduce_the_report(zoo_root):
    p = load_predictions(zoo_root / "alpha", "PrivateTest", "none")
    report = json.loads((zoo_root / "alpha" / "report.json").read_text())
    assert p.accuracy == pytest.approx(report["splits"]["PrivateTest"]["none"]["accuracy"])
    with pytest.raises(KeyError, match="tencrop"):
        load_predictions(zoo_root / "alpha", "PrivateTest", "tencrop")


def _toy(model: str, probs: list[list[float]], labels: list[int], names: list[str]) -> Predictions:
    full = np.zeros((len(probs), 7), dtype=np.float32)
    full[:, : len(probs[0])] = probs
    return Predictions(model, full, np.array(labels), np.array(names))


def test_align_cells_disagreements_and_ensembles():
    a = _toy("a", [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], [0, 1, 1], ["x", "y", "z"])
    b = _toy("b", [[0.3, 0.7], [0.6, 0.4], [0.1, 0.9]], [1, 1, 0], ["z", "x", "y"])
    a2, b2 = align([a, b])
    assert b2.names.tolist() == ["x", "y", "z"] and b2.labels.tolist() == [1, 0, 1]
    assert cell_indices(a2, true_class=1, pred_class=0).tolist() == [2]
    assert disagreements(a2, b2).tolist() == [2]
    e = ensemble([a2, b2], [1, 3])
    assert np.allclose(e.probs[0, :2], [0.25 * 0.9 + 0.75 * 0.6, 0.25 * 0.1 + 0.75 * 0.4])
    assert top_k(e.probs[1], CLASSES)[0][0] == "disgust"
    with pytest.raises(KeyError, match="no prediction"):
        align([a, b], ["x", "w"])
    with pytest.raises(ValueError, match="zero"):
        ensemble([a2], [0.0])
    assert index_by_name(["y", "q"], ["x", "y"]).tolist() == [1, -1]


def test_greedy_ensemble_picks_complementary_members():
    labels = [0, 1, 0, 1]
    good = _toy("good", [[0.9, 0.1], [0.4, 0.6], [0.45, 0.55], [0.3, 0.7]], labels, list("abcd"))
    helper = _toy("helper", [[0.4, 0.6], [0.3, 0.7], [0.9, 0.1], [0.6, 0.4]], labels, list("abcd"))
    bad = _toy("bad", [[0.1, 0.9], [0.9, 0.1], [0.2, 0.8], [0.8, 0.2]], labels, list("abcd"))
    chosen = greedy_ensemble({"bad": bad, "good": good, "helper": helper})
    assert chosen[0] == "good" and "bad" not in chosen
    assert ensemble([{"good": good, "helper": helper}[m] for m in chosen]).accuracy == 1.0


def test_runs_tables(tmp_path):
    for i, (opt, sched) in enumerate([("sgd", "cosine"), ("adam", "cosine"), ("sgd", "plateau")]):
        run = tmp_path / "sweep" / f"r{i}"
        run.mkdir(parents=True)
        (run / "config.json").write_text(
            json.dumps(
                {"model": "vggnet", "optimizer": opt, "schedule": sched, "lr": 0.01, "epochs": 2, "batch_size": 64}
            )
        )
        pd.DataFrame(
            {
                "epoch": [1, 2],
                "train_loss": [1.5, 1.2],
                "train_acc": [0.4, 0.5],
                "val_loss": [1.4, 1.3],
                "val_acc": [0.5, 0.6 + i / 100],
                "lr": [0.01, 0.005],
                "seconds": [60, 60],
                "images_per_s": [400, 400],
            }
        ).to_csv(run / "log.csv", index=False)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "log.csv").write_text("not,a\nlog")
    runs = list_runs(tmp_path)
    assert [r.name for r in runs] == ["sweep/r0", "sweep/r1", "sweep/r2"]
    table = runs_table(runs)
    assert table["run"].tolist() == ["sweep/r2", "sweep/r1", "sweep/r0"]  # best PublicTest accuracy first
    assert table["best_val_acc"].tolist() == [0.62, 0.61, 0.6] and table["hours"].iloc[0] == round(120 / 3600, 2)
    grid = optimizer_schedule_grid(runs, "vggnet")
    assert grid.loc["sgd", "plateau"] == 0.62 and grid.loc["adam", "cosine"] == 0.61
    assert np.isnan(grid.loc["adam", "plateau"])


def test_runs_list_nested_roots_in_their_own_place(tmp_path):
    """runs/jobs inside runs/: the Training page lists own runs, then the shipped zoo, then jobs, and a
    job's run once (a job sorted first and was preselected when runs/ listed it too)."""
    log = "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds,images_per_s\n1,1.5,0.4,1.4,0.5,0.01,60,400\n"
    runs, zoo = tmp_path / "runs", tmp_path / "checkpoints"
    for folder, sidecar in [
        (runs / "vggnet", "config.json"),
        (runs / "jobs" / "20261207-1" / "run", "config.json"),
        (zoo / "lobo_net", "model.json"),
    ]:
        folder.mkdir(parents=True)
        (folder / "log.csv").write_text(log)
        (folder / sidecar).write_text(json.dumps({"model": "vggnet"}))
    names = [r.name for r in list_runs(runs, zoo, runs / "jobs")]
    assert names == ["vggnet", "lobo_net (shipped)", "20261207-1/run"]
    assert [r.name for r in list_runs(runs)] == ["jobs/20261207-1/run", "vggnet"]  # alone, a root lists all


def test_scatter_labels_avoid_each_other():
    """The zoo's accuracy/latency scatter: models with close scores (msff_cnn and drf_msam, 66.3 and 66.0 at
    7 and 8 ms) get their labels on different sides instead of printed over each other."""
    table = pd.DataFrame(
        {
            "model": ["msff_cnn", "drf_msam", "lobo_net", "vggnet", "deep_emotion"],
            "CPU ms/face": [7.0, 8.0, 10.3, 10.4, 0.5],
            "PrivateTest acc": [66.34, 66.04, 66.87, 66.04, 57.51],
        }
    )
    places = list(accuracy_latency_scatter(table).data[0].textposition)
    assert set(places) <= set(LABEL_PLACES)
    assert places[0] != places[1] and places[2] != places[3]
    assert places[4] == "middle right"  # bottom left of the plot: above, the label would run off its left edge
    assert label_positions(np.array([0.0]), np.array([1.0]), ["only"]) == ["top center"]  # alone: the usual place
    assert len(accuracy_latency_scatter(table.iloc[:0]).data[0].x) == 0  # no model measured yet: no error


def test_parallel_coordinates_leave_room_for_long_run_names():
    table = pd.DataFrame(
        {
            "model": ["vggnet", "lobo_net_2conv_bn_dropout"],
            "optimizer": ["sgd", "adam"],
            "lr": [0.01, 1e-4],
            "best_val_acc": [0.66, 0.61],
        }
    )
    fig = settings_parallel_coordinates(table, ["model", "optimizer", "lr"])
    assert list(fig.data[0].dimensions[0].ticktext) == ["vggnet", "lobo_net_2conv_bn_dropout"]
    assert fig.layout.margin.l >= 7 * len("lobo_net_2conv_bn_dropout")  # the first axis's labels sit left of it
    assert settings_parallel_coordinates(table.assign(model="a"), ["model"]).layout.margin.l == 90  # short: as before


def test_confusion_matrix_figure_is_clickable():
    cm = np.arange(49).reshape(7, 7)
    fig = confusion_matrix_figure(cm, CLASSES, normalize=True)
    heat, overlay = fig.data
    assert np.allclose(np.asarray(heat.z).sum(1), 1.0)
    assert len(overlay.x) == 49 and overlay.hoverinfo == "none"  # "skip" would swallow the clicks
    event = {"selection": {"points": [{"curve_number": 1, "x": "fear", "y": "sad"}]}}
    assert clicked_cell(event, CLASSES) == (CLASSES.index("sad"), CLASSES.index("fear"))
    assert clicked_cell({"selection": {"points": []}}, CLASSES) is None


def test_mean_faces():
    images = np.stack([np.full((48, 48), v, dtype=np.uint8) for v in (10, 30, 200)])
    means = mean_faces(images, np.array([0, 0, 2]), 7)
    assert means[0, 0, 0] == 20 and means[2, 0, 0] == 200 and means[1].max() == 0


def test_demo_sample_is_small_stratified_and_real():
    demo = load_demo()
    assert DEMO_PATH.stat().st_size < 2_000_000
    assert 200 <= len(demo) <= 400 and min(demo.class_counts()) >= 40
    assert all(n.startswith("test/") and "PrivateTest_" in n for n in demo.names)
    assert demo.images.float().std() > 20  # real faces, not blank arrays
    order = one_of_each_class(demo)  # stored class by class; this order takes one of each in turn
    assert sorted(order) == list(range(len(demo)))
    assert list(demo.labels[order[:14]]) == list(range(7)) * 2


def test_model_zoo_markdown(zoo_root):
    text = render_model_zoo(list_checkpoints(zoo_root))
    assert "| alpha |" in text and "| beta |" in text and "broken" not in text
    assert "Ensemble (mean probabilities; members chosen on PublicTest: " in text
    assert "Ensemble with flip TTA (mean probabilities, each member's over a face and its mirror; members" in text
    assert "Reports computed in float32." in text  # the fixture zoo's reports say so


def test_shipped_model_zoo_md_is_current():
    """checkpoints/MODEL_ZOO.md must be what scripts/make_model_zoo.py generates from the shipped reports."""
    root = checkpoints_root()
    if not any(e.ok for e in list_checkpoints(root)):
        pytest.skip("no checkpoints shipped")
    assert (root / "MODEL_ZOO.md").read_text() == model_zoo_text(root), "run python scripts/make_model_zoo.py"


def test_job_curves_show_batches_before_the_first_epoch_ends():
    steps = [{"x": 0.5, "loss": 1.9, "acc": 0.2}, {"x": 1.0, "loss": 1.7, "acc": 0.3}]
    fig = job_curves(steps[:1], [])  # one batch in: already a point on each panel
    assert [t.name for t in fig.data] == ["training batches", "training batches"]
    assert list(fig.data[0].y) == [1.9] and list(fig.data[1].y) == [0.2] and "markers" in fig.data[0].mode
    fig = job_curves(steps, [{"epoch": 1, "val_loss": 1.8, "val_acc": 0.25}])
    assert len(fig.data) == 4 and list(fig.data[3].y) == [0.25] and fig.data[3].xaxis == "x2"
