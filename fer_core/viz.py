"""Plotly figures and face images for the dashboard (no Streamlit here, so each builder is unit-tested).

Confusion matrices carry an invisible scatter trace with a marker on every cell: Plotly heatmaps emit
no selection events in Streamlit, the scatter does, so a click on a cell returns its (x, y) labels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from PIL import Image

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
        legend={"orientation": "h"},
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
        legend={"orientation": "h"},
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


def accuracy_latency_scatter(
    table: pd.DataFrame, acc: str = "PrivateTest acc", latency: str = "CPU ms/face"
) -> go.Figure:
    data = table.dropna(subset=[acc, latency])
    fig = go.Figure(
        go.Scatter(
            x=data[latency],
            y=data[acc],
            mode="markers+text",
            text=data["model"],
            textposition="top center",
            marker={"size": 12, "color": PALETTE[0]},
        )
    )
    fig.update_layout(
        xaxis_title=f"{latency} (log)",
        yaxis_title=acc,
        xaxis_type="log",
        height=380,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
    )
    return fig


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
    fig.update_layout(
        title=title,
        xaxis_title="epoch",
        yaxis_title=column,
        height=320,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        legend={"orientation": "h"},
    )
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
    dims = []
    for col in settings:
        values = table[col]
        if pd.api.types.is_numeric_dtype(values) and col != "lr":
            dims.append({"label": col, "values": values})
        else:  # categorical, and lr (log-spaced values read best as evenly spaced ticks)
            cats = sorted(values.astype(str).unique(), key=lambda v: (len(v), v) if col != "lr" else float(v))
            codes = values.astype(str).map({c: i for i, c in enumerate(cats)})
            dims.append({"label": col, "values": codes, "tickvals": list(range(len(cats))), "ticktext": cats})
    dims.append({"label": metric, "values": table[metric]})
    fig = go.Figure(
        go.Parcoords(line={"color": table[metric], "colorscale": "Viridis", "showscale": True}, dimensions=dims)
    )
    fig.update_layout(height=360, margin={"l": 60, "r": 40, "t": 50, "b": 20})
    return fig
