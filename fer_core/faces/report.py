"""What people see of the results: boxes drawn on the photo, per-face probability bars, emotion over time.

Plotly figures for the dashboard and HTML files, matplotlib for PNG files (no browser engine needed);
no Streamlit here, so each builder is unit-tested.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from PIL import Image, ImageDraw, ImageFont

if TYPE_CHECKING:
    from ..inference import FaceResult

EMOJI = {"angry": "😠", "disgust": "🤢", "fear": "😨", "happy": "😄", "sad": "😢", "surprise": "😲", "neutral": "😐"}
COLORS = ["#E45756", "#4C78A8", "#54A24B", "#F58518", "#B279A2", "#72B7B2", "#FF9DA6", "#9D755D"]
CLASS_COLORS = dict(
    zip(EMOJI, ["#d62728", "#8c564b", "#9467bd", "#2ca02c", "#1f77b4", "#ff7f0e", "#7f7f7f"], strict=True)
)


def face_color(face_id: int) -> str:
    return COLORS[(face_id - 1) % len(COLORS)]


def hex_to_rgb(hex_color: str) -> tuple[int, int, int]:
    """``"#E45756"`` -> ``(228, 87, 86)``: OpenCV drawing and pixel checks want the colours as numbers."""
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return r, g, b


def draw_boxes(image: Image.Image, faces: list[FaceResult]) -> Image.Image:
    """A copy of ``image`` with each face's box and "id label %" above it; flagged faces get a dashed look."""
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    line = max(2, round(max(out.size) / 300))
    font = ImageFont.load_default(size=max(12, round(max(out.size) / 45)))
    for f in faces:
        x, y, w, h = f.box
        color = face_color(f.id)
        if f.flags:  # dashes: every other segment along each side
            step = max(6, line * 4)
            for t in range(0, w, 2 * step):
                draw.line([(x + t, y), (x + min(t + step, w), y)], fill=color, width=line)
                draw.line([(x + t, y + h), (x + min(t + step, w), y + h)], fill=color, width=line)
            for t in range(0, h, 2 * step):
                draw.line([(x, y + t), (x, y + min(t + step, h))], fill=color, width=line)
                draw.line([(x + w, y + t), (x + w, y + min(t + step, h))], fill=color, width=line)
        else:
            draw.rectangle([x, y, x + w, y + h], outline=color, width=line)
        text = f"{f.id} {f.label} {f.confidence:.0%}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        ty = y - (bottom - top) - 2 * line if y - (bottom - top) - 2 * line >= 0 else y + h + line
        draw.rectangle([x, ty, x + right - left + 2 * line, ty + bottom - top + 2 * line], fill=color)
        draw.text((x + line - left, ty + line - top), text, fill="white", font=font)
    return out


def face_probs_figure(face: FaceResult, classes: tuple[str, ...] | list[str]) -> go.Figure:
    """Horizontal bars per class: one per model, the ensemble in black on top."""
    fig = go.Figure()
    for i, (name, p) in enumerate(face.probs.items()):
        fig.add_bar(y=list(classes), x=p, name=name, orientation="h", marker_color=COLORS[(i + 1) % len(COLORS)])
    if len(face.probs) > 1 or not face.probs:
        fig.add_bar(y=list(classes), x=face.ensemble, name="ensemble", orientation="h", marker_color="#222222")
    fig.update_layout(
        barmode="group",
        height=90 + 22 * len(classes) * min(3, len(face.probs) + 1) // 2,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        xaxis={"range": [0, 1], "tickformat": ".0%"},
        yaxis={"autorange": "reversed"},
        legend={"orientation": "h", "y": -0.15},
    )
    return fig


def _ensemble_rows(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["model"] == "ensemble"] if len(table) else table


def timeline_figure(table: pd.DataFrame, classes: tuple[str, ...] | list[str], max_faces: int = 4) -> go.Figure:
    """Ensemble probability of every class over time, one panel per face id (the most seen first)."""
    from plotly.subplots import make_subplots

    ens = _ensemble_rows(table)
    ids = list(ens["face_id"].value_counts().index[:max_faces]) if len(ens) else []
    fig = make_subplots(rows=max(1, len(ids)), cols=1, shared_xaxes=True, subplot_titles=[f"face {i}" for i in ids])
    for row, face_id in enumerate(ids, start=1):
        part = ens[ens["face_id"] == face_id].sort_values("time_s")
        for c in classes:
            fig.add_scatter(
                x=part["time_s"],
                y=part[c],
                name=f"{EMOJI.get(c, '')} {c}",
                mode="lines+markers",
                marker={"size": 4},
                line={"color": CLASS_COLORS.get(c)},
                legendgroup=c,
                showlegend=row == 1,
                row=row,
                col=1,
            )
        fig.update_yaxes(range=[0, 1], tickformat=".0%", row=row, col=1)
    fig.update_xaxes(title_text="time (s)", row=max(1, len(ids)), col=1)
    fig.update_layout(height=120 + 200 * max(1, len(ids)), margin={"l": 10, "r": 10, "t": 40, "b": 10})
    if not ids:
        fig.add_annotation(
            text="no face found in any analysed frame", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper"
        )
    return fig


def save_timeline(table: pd.DataFrame, classes: tuple[str, ...] | list[str], path: str | Path, title: str = "") -> Path:
    """Write the emotion-over-time plot: ``.html`` (interactive, plotly.js embedded: opens offline) or ``.png``."""
    path = Path(path)
    if path.suffix.lower() == ".html":
        fig = timeline_figure(table, classes)
        fig.update_layout(title=title)
        fig.write_html(path, include_plotlyjs=True)
        return path
    if path.suffix.lower() != ".png":
        raise ValueError(f"plot must be .png or .html, not {path.suffix or 'no suffix'}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ens = _ensemble_rows(table)
    ids = list(ens["face_id"].value_counts().index[:4]) if len(ens) else []
    fig, axes = plt.subplots(max(1, len(ids)), 1, figsize=(9, 1.0 + 2.2 * max(1, len(ids))), sharex=True, squeeze=False)
    for ax, face_id in zip(axes[:, 0], ids, strict=False):
        part = ens[ens["face_id"] == face_id].sort_values("time_s")
        for c in classes:
            ax.plot(part["time_s"], part[c], label=c, color=CLASS_COLORS.get(c), marker=".", markersize=3)
        ax.set_ylim(0, 1)
        ax.set_ylabel(f"face {face_id}")
    if not ids:
        axes[0, 0].text(0.5, 0.5, "no face found in any analysed frame", ha="center", transform=axes[0, 0].transAxes)
    axes[0, 0].legend(loc="upper right", ncol=len(classes), fontsize=7)
    axes[0, 0].set_title(title)
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def upscale_face(face: np.ndarray, size: int = 96) -> Image.Image:
    """A 48x48 crop enlarged without smoothing, so people see the pixels the model saw."""
    return Image.fromarray(face).resize((size, size), Image.Resampling.NEAREST)
