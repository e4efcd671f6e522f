"""Plotly figures and face images for the dashboard (no Streamlit here, so each builder is unit-tested).

Confusion matrices carry an invisible scatter trace with a marker on every cell: Plotly heatmaps emit
no selection events in Streamlit, the scatter does, so a click on a cell returns its (x, y) labels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from PIL import Image

# horizontal legends sit above the plot, right-aligned: below it they cover the x-axis title
LEGEND_ABOVE = {"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0}

PALETTE = ["#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2", "#FF9DA6", "#9D755D"]


def confusion_matrix_figure(
    cm: np.ndarray | list, classes: list[str] | tuple[str, ...], normalize: bool = False, title: str = ""
) -> go.Figure:
    """Rows = true class, columns = predicted; clickable cells (see the module docstring)."""
    cm = np.asarray(cm, dtype=float)
    z = cm / np.clip(cm.sum(1, keepdims=True), 1, None) if normalize else cm
    text = [[f"{v:.2f}" if normalize else f"{int(v)}" for v in row] for row in z]
    labels = list(classes)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=labels,
            y=labels,
            text=text,
            texttemplate="%{text}",
            colorscale="Blues",
            showscale=False,
            hovertemplate="true %{y}<br>predicted %{x}<br>%{text}<extra></extra>",
        )
    )
    xs, ys = np.meshgrid(labels, labels)
    fig.add_trace(
        go.Scatter(
            x=xs.ravel(),
            y=ys.ravel(),
            mode="markers",
            marker={"size": 40, "opacity": 0.01},
            hoverinfo="none",
            showlegend=False,
        )
    )
    fig.update_layout(
        title=title,
        xaxis_title="predicted",
        yaxis_title="true",
        height=420,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        clickmode="event+select",
        dragmode=False,
    )
    fig.update_yaxes(autorange="reversed")
    return fig


def clicked_cell(event: object, classes: list[str] | tuple[str, ...]) -> tuple[int, int] | None:
    """(true, predicted) class indices of a clicked cell from ``st.plotly_chart(on_select=...)``'s event."""
    try:
        points = event["selection"]["points"]  # type: ignore[index]
    except (KeyError, TypeError):
        return None
    for p in points:
        if p.get("x") in classes and p.get("y") in classes:
            return list(classes).index(p["y"]), list(classes).index(p["x"])
    return None


def per_class_bars(per_model: dict[str, dict], metric: str = "f1") -> go.Figure:
    """Grouped bars: one group per class, one bar per model, of precision/recall/F1."""
    fig = go.Figure()
    for i, (model, per_class) in enumerate(per_model.items()):
        fig.add_bar(
            name=model,
            x=list(per_class),
            y=[v[metric] for v in per_class.values()],
            marker_color=PALETTE[i % len(PALETTE)],
        )
    fig.update_layout(
        barmode="group",
        yaxis_title=metric,
        yaxis_range=[0, 1],
        height=340,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        legend=LEGEND_ABOVE,
    )
    return fig


def class_count_bars(counts: dict[str, list[int]], classes: list[str] | tuple[str, ...]) -> go.Figure:
    fig = go.Figure()
    for i, (split, c) in enumerate(counts.items()):
        fig.add_bar(name=split, x=list(classes), y=c, marker_color=PALETTE[i % len(PALETTE)], text=c)
    fig.update_layout(
        barmode="group",
        yaxis_title="faces",
        height=360,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        legend=LEGEND_ABOVE,
    )
    return fig


def intensity_histograms(images: np.ndarray, labels: np.ndarray, classes: list[str] | tuple[str, ...]) -> go.Figure:
    """Pixel-intensity distribution per class (normalised to a density, so classes compare)."""
    fig = go.Figure()
    bins = np.arange(0, 257, 8)
    for c, name in enumerate(classes):
        px = images[labels == c].ravel()
        if px.size == 0:
            continue
        hist, _ = np.histogram(px, bins=bins, density=True)
        fig.add_scatter(x=bins[:-1] + 4, y=hist, mode="lines", name=name, line={"color": PALETTE[c % len(PALETTE)]})
    fig.update_layout(
        xaxis_title="pixel intensity", yaxis_title="density", height=340, margin={"l": 10, "r": 10, "t": 30, "b": 10}
    )
    return fig


def mean_faces(images: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, 48, 48) uint8: the average face of each class (zeros for an empty class)."""
    out = np.zeros((num_classes, *images.shape[1:]), dtype=np.uint8)
    for c in range(num_classes):
        sel = images[labels == c]
        if len(sel):
            out[c] = sel.mean(0).round().astype(np.uint8)
    return out


def upscale(face: np.ndarray, size: int = 96) -> Image.Image:
    """A 48x48 face as a crisp larger image (nearest-neighbour keeps the pixels honest)."""
    return Image.fromarray(np.asarray(face, dtype=np.uint8)).resize((size, size), Image.Resampling.NEAREST)


# where a point's label may go, the usual first; offsets of the label box's centre from the marker, in units of
# (label width / 2 + marker radius, label height / 2 + marker radius)
LABEL_PLACES = {
    "top center": (0, 1),
    "bottom center": (0, -1),
    "middle right": (1, 0),
    "middle left": (-1, 0),
    "top right": (1, 1),
    "top left": (-1, 1),
    "bottom right": (1, -1),
    "bottom left": (-1, -1),
}


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Area shared by two boxes given as (x0, y0, x1, y1)."""
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def label_positions(
    x: np.ndarray,
    y: np.ndarray,
    labels: list[str],
    size: tuple[float, float] = (800, 300),
    char_px: float = 6.5,
    line_px: float = 14,
    marker_px: float = 6,
) -> list[str]:
    """A Plotly ``textposition`` for each point, chosen greedily so labels overlap other labels, markers
    and the plot's edge least. ``x`` and ``y`` are in axis units already made linear (log10 for a log
    axis); they are mapped onto a plot of ``size`` pixels, text sized by ``char_px`` per character."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    w, h = size

    def scale(v: np.ndarray, span: float) -> np.ndarray:
        lo, hi = v.min(), v.max()
        pad = (hi - lo) * 0.05 or 1.0
        return (v - lo + pad) / (hi - lo + 2 * pad) * span

    px, py = scale(x, w), scale(y, h)
    markers = [(a - marker_px, b - marker_px, a + marker_px, b + marker_px) for a, b in zip(px, py, strict=True)]
    placed: list[tuple[float, float, float, float]] = []
    out = []
    for a, b, text in zip(px, py, labels, strict=True):
        half_w, half_h = len(text) * char_px / 2, line_px / 2
        best, best_cost, best_box = "top center", float("inf"), (0.0, 0.0, 0.0, 0.0)
        for place, (dx, dy) in LABEL_PLACES.items():
            cx, cy = a + dx * (half_w + marker_px), b + dy * (half_h + marker_px)
            box = (cx - half_w, cy - half_h, cx + half_w, cy + half_h)
            inside = _overlap(box, (0, 0, w, h))
            cost = sum(_overlap(box, o) for o in placed) + sum(_overlap(box, m) for m in markers)
            cost += (box[2] - box[0]) * (box[3] - box[1]) - inside
            if cost < best_cost:
                best, best_cost, best_box = place, cost, box
        placed.append(best_box)
        out.append(best)
    return out


def accuracy_latency_scatter(
    table: pd.DataFrame, acc: str = "PrivateTest acc", latency: str = "CPU ms/face"
) -> go.Figure:
    data = table.dropna(subset=[acc, latency])
    names = [str(m) for m in data["model"]]
    places = label_positions(np.log10(data[latency].to_numpy(float)), data[acc].to_numpy(float), names) if names else []
    fig = go.Figure(
        go.Scatter(
            x=data[latency],
            y=data[acc],
            mode="markers+text",
            text=names,
            textposition=places or "top center",
            marker={"size": 12, "color": PALETTE[0]},
        )
    )
    fig.update_layout(
        xaxis_title=f"{latency} (log)",
        yaxis_title=acc,
        xaxis_type="log",
        # plain 1-2-5 ticks: a short log range otherwise gets minor labels ("5 6 7") that read as whole ms
        xaxis={"tickvals": [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500]},
        height=380,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
    )
    return fig


# the epoch log's columns as an axis reads them
CURVE_AXES = {
    "val_acc": "accuracy",
    "train_acc": "accuracy",
    "val_loss": "loss",
    "train_loss": "loss",
    "lr": "learning rate",
}


def learning_curves(logs: dict[str, pd.DataFrame], column: str, title: str = "") -> go.Figure:
    fig = go.Figure()
    for i, (name, log) in enumerate(logs.items()):
        if column in log:
            fig.add_scatter(
                x=log["epoch"],
                y=log[column],
                mode="lines+markers",
                name=name,
                line={"color": PALETTE[i % len(PALETTE)]},
                marker={"size": 4},
            )
    # the title on top, the legend (about two runs a row in a half-width column) between it and the plot
    rows = -(-len(fig.data) // 2)
    fig.update_layout(
        title={"text": title, "yref": "container", "y": 1.0, "yanchor": "top", "pad": {"t": 8}},
        xaxis_title="epoch",
        yaxis_title=CURVE_AXES.get(column, column),
        yaxis_tickformat=".0%" if column.endswith("_acc") else None,
        height=300 + 22 * rows,
        margin={"l": 10, "r": 10, "t": 36 + 22 * rows, "b": 10},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0},
    )
    return fig


def job_curves(steps: list[dict], history: list[dict]) -> go.Figure:
    """A background job's live curves: loss and accuracy of the training batches so far (each point the
    epoch's running mean, at fractional epoch ``x``; moves with every batch) and the validation split's
    after each epoch (markers), so a 1-epoch job shows a curve long before its first epoch ends."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Accuracy"), horizontal_spacing=0.08)
    for col, (train_key, val_key) in enumerate((("loss", "val_loss"), ("acc", "val_acc")), start=1):
        if steps:
            fig.add_scatter(
                x=[p["x"] for p in steps],
                y=[p[train_key] for p in steps],
                mode="lines+markers",  # markers: the first batches' points show before they make a line
                name="training batches",
                line={"color": PALETTE[0]},
                marker={"size": 4},
                showlegend=col == 1,
                row=1,
                col=col,
            )
        if history:
            fig.add_scatter(
                x=[r["epoch"] for r in history],
                y=[r[val_key] for r in history],
                mode="lines+markers",
                name="validation, per epoch",
                line={"color": PALETTE[1]},
                marker={"size": 7},
                showlegend=col == 1,
                row=1,
                col=col,
            )
    fig.update_xaxes(title_text="epoch", rangemode="tozero")
    fig.update_yaxes(range=[0, 1], tickformat=".0%", row=1, col=2)
    fig.update_layout(height=280, margin={"l": 10, "r": 10, "t": 40, "b": 10}, legend=LEGEND_ABOVE)
    return fig


def probability_bars(
    probs: np.ndarray | list[float],
    classes: list[str] | tuple[str, ...],
    highlight: int | None = None,
    height: int = 220,
) -> go.Figure:
    """Horizontal bars of class probabilities in class order (the explained class highlighted)."""
    probs = [float(p) for p in probs]
    colors = [PALETTE[1] if i == highlight else PALETTE[0] for i in range(len(classes))]
    fig = go.Figure(
        go.Bar(
            x=probs,
            y=list(classes),
            orientation="h",
            marker_color=colors,
            text=[f"{p:.0%}" for p in probs],
            textposition="outside",
        )
    )
    fig.update_layout(
        height=height, xaxis_range=[0, 1.1], xaxis_title="probability", margin={"l": 10, "r": 10, "t": 10, "b": 10}
    )
    fig.update_yaxes(autorange="reversed")
    return fig


def settings_parallel_coordinates(table: pd.DataFrame, settings: list[str], metric: str = "best_val_acc") -> go.Figure:
    """One line per run across its settings (categorical ones as ticks) to ``metric``, coloured by it:
    which optimizer, learning rate and schedule go with high accuracy, at a glance (sweeps)."""
    dims, longest = [], 0
    for col in settings:
        values = table[col]
        if pd.api.types.is_numeric_dtype(values) and col != "lr":
            dims.append({"label": col, "values": values})
        else:  # categorical, and lr (log-spaced values read best as evenly spaced ticks)
            cats = sorted(values.astype(str).unique(), key=lambda v: (len(v), v) if col != "lr" else float(v))
            codes = values.astype(str).map({c: i for i, c in enumerate(cats)})
            dims.append({"label": col, "values": codes, "tickvals": list(range(len(cats))), "ticktext": cats})
            if not dims[:-1]:  # the first axis's tick labels sit left of it: room for the longest
                longest = max(map(len, cats))
    dims.append({"label": metric, "values": table[metric]})
    fig = go.Figure(
        go.Parcoords(line={"color": table[metric], "colorscale": "Viridis", "showscale": True}, dimensions=dims)
    )
    fig.update_layout(height=360, margin={"l": max(90, 7 * longest + 10), "r": 40, "t": 50, "b": 20})
    return fig


# ---- robustness (fer_core.eval.robustness reports) -------------------------------------------------------
def reliability_diagram(before: dict, after: dict | None = None, title: str = "") -> go.Figure:
    """Accuracy per confidence bin (bars) against the diagonal a calibrated model follows; ``before`` and
    ``after`` are :func:`fer_core.eval.calibration.reliability_bins` dicts (after temperature scaling)."""
    fig = go.Figure()
    for i, (name, bins) in enumerate((("before scaling", before), ("after scaling", after))):
        if bins is None:
            continue
        edges = np.asarray(bins["edges"])
        centres = (edges[:-1] + edges[1:]) / 2
        fig.add_bar(
            x=centres,
            y=[a if a is not None else 0 for a in bins["accuracy"]],
            width=(edges[1] - edges[0]) * (0.9 if after is None else 0.45),
            offset=None if after is None else (edges[1] - edges[0]) * (-0.45 + 0.45 * i),
            name=name,
            marker_color=PALETTE[i],
            customdata=np.stack([bins["count"], [c if c is not None else np.nan for c in bins["confidence"]]], 1),
            hovertemplate="confidence %{customdata[1]:.2f}<br>accuracy %{y:.2f}<br>"
            "%{customdata[0]} faces<extra></extra>",
        )
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dash", "color": "gray"}, name="calibrated")
    fig.update_layout(
        title=title,
        xaxis={"title": "confidence", "range": [0, 1]},
        yaxis={"title": "accuracy", "range": [0, 1]},
        height=380,
        margin={"l": 10, "r": 10, "t": 40 + 18 * title.count("<br>"), "b": 70},
        # below the x-axis title: three entries wrap in a narrow column and would cover a title above
        legend={"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0},
        barmode="overlay",
    )
    return fig


def severity_curves(reports: dict[str, dict], corruptions: list[str] | None = None, cols: int = 5) -> go.Figure:
    """Accuracy against severity (0 = clean) for every corruption, one panel each, one line per model."""
    from plotly.subplots import make_subplots

    first = next(iter(reports.values()))
    names = corruptions or list(first["corruptions"])
    rows = -(-len(names) // cols)
    titles = [first["corruptions"][n]["title"] for n in names]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, shared_yaxes=True, vertical_spacing=0.16)
    for m, (model, rep) in enumerate(reports.items()):
        for k, name in enumerate(names):
            row = rep["corruptions"].get(name)
            if row is None:
                continue
            fig.add_scatter(
                x=[0, *row["severities"]],
                y=[rep["clean"]["accuracy"], *row["accuracy"]],
                mode="lines+markers",
                name=model,
                legendgroup=model,
                showlegend=k == 0,
                line={"color": PALETTE[m % len(PALETTE)]},
                marker={"size": 5},
                row=k // cols + 1,
                col=k % cols + 1,
            )
    fig.update_yaxes(range=[0, 1], tickformat=".0%")
    fig.update_xaxes(tickvals=[0, 1, 2, 3, 4, 5])
    fig.update_xaxes(title_text="severity (0: clean)", title_standoff=4, row=rows)  # under the bottom row only
    fig.update_yaxes(title_text="accuracy", col=1)
    # the first row's panel titles sit where LEGEND_ABOVE would: lift the legend 32 px above them
    height, top, bottom = 260 * rows + 20, 70, 30
    legend = LEGEND_ABOVE | {"y": 1 + 32 / (height - top - bottom)}
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": top, "b": bottom}, legend=legend)
    return fig


def corruption_heatmap(reports: dict[str, dict]) -> go.Figure:
    """Models x corruptions: accuracy averaged over severities 1-5, with the clean accuracy and the mean
    corruption accuracy as the first and last columns."""
    first = next(iter(reports.values()))
    names = list(first["corruptions"])
    x = ["clean", *[first["corruptions"][n]["title"] for n in names], "mean"]
    z = []
    for rep in reports.values():
        grid = rep["corruptions"]
        cells = [float(np.mean(grid[n]["accuracy"])) if n in grid else np.nan for n in names]
        z.append([rep["clean"]["accuracy"], *cells, rep["mean_corruption_accuracy"]])
    z = np.asarray(z)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=x,
            y=list(reports),
            text=[[f"{v:.1%}" for v in row] for row in z],
            texttemplate="%{text}",
            colorscale="RdYlGn",
            zmin=0.15,
            zmax=max(0.7, float(np.nanmax(z))),
            hovertemplate="%{y}<br>%{x}: %{text}<extra></extra>",
            colorbar={"title": "accuracy", "tickformat": ".0%"},
        )
    )
    fig.update_layout(height=120 + 45 * len(reports), margin={"l": 10, "r": 10, "t": 30, "b": 10})
    fig.update_yaxes(autorange="reversed")
    return fig
