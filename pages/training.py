"""Training runs: learning curves overlaid, run configurations, and the optimizer x schedule study."""

import streamlit as st

from fer_core.jobs import jobs_root
from fer_core.runs import list_runs, optimizer_schedule_grid, runs_table
from fer_core.viz import learning_curves, settings_parallel_coordinates
from fer_core.zoo import checkpoints_root
from pages._common import in_app_frame, runs_dir

in_app_frame()
RUN_COLUMNS = ["batch_size", "epochs_run", "epochs_planned", "best_epoch"]  # shown with spaces, not underscores

st.title("Training runs")
# own runs first, then the shipped zoo, then background jobs and sweeps (also where runs/jobs lies inside runs/)
runs = list_runs(runs_dir(), checkpoints_root(), jobs_root())
if not runs:
    st.info(f"No runs yet: `python scripts/train_all.py` writes them to {runs_dir()}/.")
    st.stop()
names = [r.name for r in runs]
chosen = st.multiselect("Runs", names, default=names[: min(4, len(names))], key="runs")
logs = {r.name: r.log for r in runs if r.name in chosen}

c1, c2 = st.columns(2)
c1.plotly_chart(learning_curves(logs, "val_acc", "PublicTest accuracy"), key="val_acc")
c2.plotly_chart(learning_curves(logs, "train_acc", "Training accuracy (augmented batches)"), key="train_acc")
c3, c4 = st.columns(2)
c3.plotly_chart(learning_curves(logs, "val_loss", "PublicTest loss"), key="val_loss")
c4.plotly_chart(learning_curves(logs, "train_loss", "Training loss"), key="train_loss")
st.plotly_chart(learning_curves(logs, "lr", "Learning rate"), key="lr")

st.subheader("Run configurations, best PublicTest accuracy first")
st.dataframe(
    runs_table([r for r in runs if r.name in chosen]).style.format({"best_val_acc": "{:.2%}", "lr": "{:g}"}),
    hide_index=True,
    key="runs_table",
    column_config={c: c.replace("_", " ") for c in RUN_COLUMNS} | {"best_val_acc": "best PublicTest acc"},
)
st.caption(
    "Accuracies here are the training loop's own end-of-epoch check of its float32 weights; the Model zoo "
    "evaluates the shipped weights (stored in fp16 where that keeps PrivateTest accuracy within 0.1 points), so "
    "the two can differ by a face or two. "
    "A learning-rate curve that jumps marks a run resumed with a different plan (e.g. fewer epochs)."
)

st.subheader("Optimizers x schedules (the VGGNet paper's tuning study, from real runs)")
models = sorted({r.config.get("model") for r in runs if r.config.get("model")})
model = st.selectbox("Model", models, index=models.index("vggnet") if "vggnet" in models else 0, key="grid_model")
grid = optimizer_schedule_grid(runs, model)
st.dataframe(grid.style.format("{:.2%}", na_rep="-"), key="grid")
if grid.notna().sum().sum() < 4:
    st.caption(
        "Few cells filled: each cell is a real run. Train more combinations, e.g. "
        "`python scripts/train_all.py --models vggnet --optimizer adam --schedule onecycle "
        "--out runs/sweep_adam_onecycle`."
    )

st.subheader("Settings vs accuracy")
table = runs_table(runs).dropna(subset=["optimizer", "lr", "schedule"])
if len(table) >= 2:
    st.plotly_chart(
        settings_parallel_coordinates(table, ["model", "optimizer", "lr", "schedule", "batch_size", "epochs_run"]),
        key="parcoords",
    )
    st.caption("One line per run (all runs, sweeps included); drag along an axis to filter.")
else:
    st.caption("Needs two runs or more: launch a sweep on the Fine-tune page or with `python scripts/sweep.py`.")
