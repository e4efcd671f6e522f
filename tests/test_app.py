"""Every dashboard page through Streamlit's AppTest: renders without exceptions, with and without the
dataset, with good and broken checkpoints; the expected widgets and figures are there."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from streamlit.testing.v1 import AppTest

from conftest import MINI_FOLDER, ROOT

PAGES = ["pages/zoo.py", "pages/dataset.py", "pages/compare.py", "pages/robustness.py", "pages/training.py"]


@pytest.fixture
def app_env(monkeypatch, zoo_root, tmp_path):
    monkeypatch.setenv("FER_CHECKPOINTS", str(zoo_root))
    monkeypatch.setenv("FER_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("FER_USER_MODELS", str(tmp_path / "user_models"))
    monkeypatch.delenv("FER2013_DIR", raising=False)


def open_page(page: str, data_dir: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120)
    at.run()
    if data_dir is not None:
        at.text_input(key="data_dir").input(data_dir).run()
    if page != "pages/zoo.py":
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def sidebar_message(at: AppTest) -> str:
    return " ".join(m.value for kind in ("info", "success", "warning") for m in getattr(at.sidebar, kind))


def charts(at: AppTest) -> list:
    return at.get("plotly_chart")


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("with_data", [False, True], ids=["demo", "dataset"])
def test_every_page_renders(app_env, page, with_data):
    at = open_page(page, str(MINI_FOLDER) if with_data else None)
    assert at.title[0].value
    sidebar_text = sidebar_message(at)
    assert ("FER2013 from" in sidebar_text) if with_data else ("Demo sample" in sidebar_text)


def test_zoo_page_lists_checkpoints_and_flags_broken_ones(app_env):
    at = open_page("pages/zoo.py")
    table, everything = at.dataframe[0].value, at.dataframe[1].value
    assert set(table["model"]) == {"alpha", "beta"}
    assert "PrivateTest acc" in table and "recipe" not in table  # the main table fits the page...
    assert {"recipe", "best epoch", "published"} <= set(everything)  # ...the rest is in "All columns"
    config = json.loads(at.dataframe[0].proto.columns)
    assert config["PrivateTest acc"]["type_config"]["format"] == "%.2f"  # 58.60 beside 60.01, not 58.6
    warnings = " ".join(w.value for w in at.warning)
    assert "broken" in warnings and "pickled" in warnings
    assert charts(at)  # accuracy vs latency


def test_zoo_page_lists_fine_tuned_models_apart(app_env, zoo_root, tmp_path, mini_splits):
    shutil.copytree(zoo_root / "alpha", tmp_path / "user_models" / "my-alpha")
    at = open_page("pages/zoo.py")
    tables = [d.value for d in at.dataframe]
    assert set(tables[0]["model"]) == {"alpha", "beta"}  # shipped
    assert list(tables[2]["model"]) == ["my-alpha"]  # then the user's own, in a table of their own
    assert any("Your fine-tuned models" in m.value for m in at.markdown)
    assert "test faces" not in tables[0]  # shipped: FER2013's test splits, always
    n = [len(mini_splits[s]) for s in ("PublicTest", "PrivateTest")]
    assert list(tables[2]["test faces"]) == [f"{n[0]} / {n[1]}"]  # the user's: whatever folder the job used
    assert any("my-alpha: scored on a smaller folder" in c.value for c in at.caption)
    assert any("(3,589 / 3,589 PublicTest / PrivateTest faces)" in c.value for c in at.caption)


def test_dataset_page(app_env):
    at = open_page("pages/dataset.py", str(MINI_FOLDER))
    assert at.selectbox(key="split").options == ["Training", "PublicTest", "PrivateTest"]
    assert len(charts(at)) == 2  # class counts, intensity histograms
    assert len(at.get("image")) == 2  # sample faces, mean faces
    at.selectbox(key="sample_class").select("disgust").run()
    assert not at.exception
    shown = at.get("image")[0].proto.imgs
    assert shown and all(re.fullmatch(r"(Training|PublicTest|PrivateTest)_\d+", i.caption) for i in shown)


def test_dataset_page_without_data_uses_report_counts(app_env):
    at = open_page("pages/dataset.py")
    assert at.selectbox(key="split").options == ["PrivateTest"]
    names = [trace["name"] for trace in __import__("json").loads(charts(at)[0].proto.spec)["data"]]
    assert "PrivateTest (from reports)" in names and "PrivateTest demo sample" in names


def test_wrong_folder_gives_a_message_not_a_traceback(app_env, tmp_path):
    at = open_page("pages/dataset.py", str(tmp_path / "nowhere"))
    assert "Could not load" in sidebar_message(at)
    assert any("Could not load" in w.value for w in at.sidebar.warning)  # a warning, not a neutral note


def test_compare_page_and_ensemble_builder(app_env, zoo_root):
    import json

    at = open_page("pages/compare.py", str(MINI_FOLDER))
    assert at.multiselect(key="models").value == ["alpha", "beta"]
    assert len([c for c in charts(at) if "cm_" in (c.key or "")]) == 3  # two models + the ensemble
    acc = {
        m: json.loads((zoo_root / m / "report.json").read_text())["splits"]["PrivateTest"]["none"]["accuracy"]
        for m in ("alpha", "beta")
    }
    at.slider(key="w_beta").set_value(0.0).run()  # the ensemble is alpha alone
    assert at.metric[0].value == f"{acc['alpha']:.2%}"
    at.slider(key="w_alpha").set_value(0.0).run()
    assert "All weights are zero" in at.warning[-1].value and not at.metric
    at.multiselect(key="models").set_value(["beta"]).run()  # the members follow the compared models
    assert at.multiselect(key="members").value == ["beta"]
    at.slider(key="w_beta").set_value(0.5).run()
    assert at.metric[0].value == f"{acc['beta']:.2%}"
    at.multiselect(key="members").set_value(["alpha", "beta"]).run()  # the user's own members stay
    at.multiselect(key="models").set_value(["alpha"]).run()
    assert at.multiselect(key="members").value == ["alpha", "beta"]
    at.radio(key="split").set_value("PublicTest").run()
    at.selectbox(key="tta").set_value("flip").run()
    at.toggle(key="normalize").set_value(True).run()
    assert not at.exception and at.metric


def test_compare_page_disagreements_need_two_different_models(app_env):
    at = open_page("pages/compare.py", str(MINI_FOLDER))
    assert at.button(key="explain_disagree")  # alpha and beta disagree on some faces: a picker and a button
    at.selectbox(key="dis_b").set_value("alpha").run()  # the same model twice: nothing to pick, nothing to press
    assert not at.exception
    assert any("two different models" in m.value for m in at.info)
    assert not [b for b in at.button if b.key == "explain_disagree"]
    assert at.metric[0].delta.endswith("points vs best member")  # percentage points, not a relative %


def test_compare_page_with_no_checkpoints(app_env, monkeypatch, tmp_path):
    monkeypatch.setenv("FER_CHECKPOINTS", str(tmp_path / "empty"))
    at = open_page("pages/compare.py")
    assert "No evaluated checkpoints" in at.info[0].value


def test_training_page_with_runs(app_env, tmp_path, mini_splits):
    from fer_core.train import TrainConfig, train

    cfg = TrainConfig.from_recipe(
        "vggnet",
        model_args={"widths": (8, 16, 16, 16), "fc": 32},
        out=str(tmp_path / "runs"),
        epochs=2,
        batch_size=7,
        threads=1,
    )
    train(cfg, mini_splits, progress=False)
    at = open_page("pages/training.py")
    assert "vggnet" in at.multiselect(key="runs").options
    assert len(charts(at)) == 5 and at.dataframe
    layout = json.loads(next(c for c in charts(at) if c.key == "val_acc").proto.spec)["layout"]
    assert layout["yaxis"]["title"]["text"] == "accuracy" and layout["yaxis"]["tickformat"] == ".0%"
    table = at.dataframe[0].proto  # the runs table: labels without underscores, accuracy in %
    assert "best PublicTest acc" in table.columns and "epochs run" in table.columns
    assert b"%" in table.arrow_data.styler.display_values
