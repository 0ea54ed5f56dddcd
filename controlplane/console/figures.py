"""Plotly figures for the console, built on the server from plain rows (no queries here).

Each builder returns the figure as JSON text that is safe inside a `<script type="application/json">`
element; console.js draws it with plotly.js from our own static files, and live endpoints send the
same text for `Plotly.react`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from controlplane.telemetry.selectors import PoolUtilization, SavingSummary, Series, ServiceAttainment

ROLE_COLORS = {
    "prefill": "#3355ff", "decode": "#f59e0b", "colocated": "#10b981", "router": "#6b7280", "idle": "#c4c9d4",
}
CLASS_COLORS = {"prefill-heavy": "#3355ff", "decode-heavy": "#f59e0b", "balanced": "#10b981"}
ACCENT = "#3355ff"
MUTED = "#98a2b3"
GRID = "#eef0f3"
_FONT = {"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 12, "color": "#1d2330"}
# JSON allows these escaped inside strings, and unescaped they could end the <script> element early.
_SCRIPT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def _times(values: Sequence[datetime]) -> list[str]:
    """Times as ISO 8601 text, as plotly's encoder would write them: plotly validates datetime objects one by
    one, which costs tens of milliseconds for a day of minutes."""
    return [value.isoformat() for value in values]


def to_json(fig: go.Figure) -> str:
    return fig.to_json(validate=False, pretty=False, engine="json").translate(_SCRIPT_SAFE)


def _figure(title: str, *, height: int = 260, y_title: str = "", percent: bool = False,
            y_range: list[float] | None = None, **layout: Any) -> go.Figure:
    """A figure in the console's style. The layout is given whole at construction: plotly checks it once there,
    where each update_* call would check it again (five times faster this way)."""
    yaxis: dict[str, Any] = {"gridcolor": GRID, "zeroline": False, "title": {"text": y_title}, "rangemode": "tozero"}
    if percent:
        yaxis["tickformat"] = ".0%"
    if y_range is not None:
        yaxis["range"] = y_range
    return go.Figure(layout={
        "title": {"text": title, "x": 0, "xanchor": "left", "font": {"size": 14}},
        "height": height, "margin": {"l": 56, "r": 16, "t": 40, "b": 40}, "font": _FONT,
        "paper_bgcolor": "#ffffff", "plot_bgcolor": "#ffffff", "hovermode": "x unified",
        "legend": {"orientation": "h", "y": -0.2}, "xaxis": {"gridcolor": GRID, "zeroline": False}, "yaxis": yaxis,
        **layout,
    })


def _empty(fig: go.Figure, text: str) -> go.Figure:
    fig.add_annotation(text=text, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5,
                       font={"color": MUTED, "size": 13})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


# --- Overview ----------------------------------------------------------------------------------------

SERIES_TITLES = {
    "cost_usd_per_h": ("Cost", "USD / h", False),
    "power_kw": ("Power", "kW", False),
    "gpu_util": ("GPU utilization", "", True),
    "tokens_per_s": ("Tokens per second", "tokens / s", False),
}


def time_series(series: Series) -> str:
    """One metric over the window, a point per roll-up bucket (gaps where nothing was rolled up)."""
    title, unit, percent = SERIES_TITLES[series.metric]
    fig = _figure(title, y_title=unit, percent=percent, showlegend=False)
    if all(value is None for value in series.y):
        return to_json(_empty(fig, "No roll-ups in this window yet"))
    fig.add_trace(go.Scatter(x=_times(series.x), y=series.y, mode="lines", name=title, line={"color": ACCENT, "width": 2},
                             fill="tozeroy", fillcolor="rgba(51,85,255,0.08)", connectgaps=False))
    return to_json(fig)


def pool_utilization(pools: Sequence[PoolUtilization]) -> str:
    """Utilization of each tier, a bar per worker role, over the window."""
    fig = _figure("GPU utilization by tier and role", percent=True, y_range=[0, 1], barmode="group",
                  hovermode="closest")
    measured = [pool for pool in pools if pool.utilization is not None]
    if not measured:
        return to_json(_empty(fig, "No GPU readings in this window"))
    for role in sorted({pool.role for pool in measured}):
        rows = [pool for pool in measured if pool.role == role]
        fig.add_trace(go.Bar(
            x=[pool.tier for pool in rows], y=[pool.utilization for pool in rows], name=role,
            marker_color=ROLE_COLORS.get(role, MUTED), customdata=[round(pool.gpus, 1) for pool in rows],
            hovertemplate="%{x} " + role + ": %{y:.1%} over %{customdata} GPUs<extra></extra>",
        ))
    return to_json(fig)


def attainment(rows: Sequence[ServiceAttainment]) -> str:
    """Each service's share of requests that met both SLOs, against its target."""
    fig = _figure("SLO attainment", percent=True, y_range=[0, 1.05], hovermode="closest")
    measured = [row for row in rows if row.attainment is not None]
    if not measured:
        return to_json(_empty(fig, "No timed requests in this window"))
    fig.add_trace(go.Bar(
        x=[row.service for row in measured], y=[row.attainment for row in measured], name="attained",
        marker_color=["#10b981" if (row.attainment or 0) >= row.target else "#c0392b" for row in measured],
        customdata=[row.requests_timed for row in measured],
        hovertemplate="%{x}: %{y:.1%} of %{customdata} requests<extra></extra>",
    ))
    fig.add_trace(go.Scatter(
        x=[row.service for row in measured], y=[row.target for row in measured], mode="markers", name="target",
        marker={"symbol": "line-ew-open", "size": 28, "color": "#1d2330", "line": {"width": 2}},
        hovertemplate="target %{y:.0%}<extra></extra>",
    ))
    return to_json(fig)


def saving(summary: SavingSummary | None) -> str:
    """What each service costs now against its active plan's colocated baseline."""
    fig = _figure("Cost against the colocated baseline", y_title="USD / h", barmode="group", hovermode="closest",
                  bargap=0.4)
    if summary is None or not summary.services:
        return to_json(_empty(fig, "No active plan with a colocated baseline"))
    names = [row.service for row in summary.services]
    fig.add_trace(go.Bar(x=names, y=[row.baseline_usd_per_h for row in summary.services], name="colocated baseline",
                         marker_color=MUTED))
    fig.add_trace(go.Bar(x=names, y=[row.cost_usd_per_h for row in summary.services], name="now",
                         marker_color=ACCENT))
    return to_json(fig)


# --- Fleet -------------------------------------------------------------------------------------------


def gpu_heatmap(
    *, title: str, nodes: Sequence[str], gpus: int, values: Mapping[tuple[str, int], float], unit: str,
    zmax: float, colorscale: str,
) -> str:
    """One row per node, one column per GPU index; blank where a GPU has no fresh reading."""
    fig = _figure(title, height=max(220, 60 + 18 * len(nodes)), hovermode="closest",
                  margin={"l": 110, "r": 16, "t": 40, "b": 30})
    if not nodes or not values:
        return to_json(_empty(fig, "No fresh GPU readings"))
    z = [[values.get((node, index)) for index in range(gpus)] for node in nodes]
    fig.add_trace(go.Heatmap(
        z=z, x=[f"GPU {index}" for index in range(gpus)], y=list(nodes), zmin=0, zmax=zmax, colorscale=colorscale,
        hoverongaps=False, colorbar={"title": {"text": unit}, "thickness": 12},
        hovertemplate="%{y} %{x}: %{z:.2f} " + unit + "<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed", rangemode="normal", showgrid=False)
    return to_json(fig)


def gpu_lines(
    *, title: str, rows: Sequence[tuple[datetime, int, float]], y_title: str = "", percent: bool = False
) -> str:
    """A line per GPU index from (time, gpu index, value) rows in time order."""
    fig = _figure(title, y_title=y_title, percent=percent, y_range=[0, 1] if percent else None)
    if not rows:
        return to_json(_empty(fig, "No readings in the last hour"))
    by_gpu: dict[int, tuple[list[datetime], list[float]]] = {}
    for moment, gpu, value in rows:
        xs, ys = by_gpu.setdefault(gpu, ([], []))
        xs.append(moment)
        ys.append(value)
    for gpu in sorted(by_gpu):
        xs, ys = by_gpu[gpu]
        fig.add_trace(go.Scatter(x=_times(xs), y=ys, mode="lines", name=f"GPU {gpu}", line={"width": 1.5}))
    return to_json(fig)


def named_lines(*, title: str, series: Mapping[str, tuple[Sequence[datetime], Sequence[float | None]]],
                y_title: str = "", percent: bool = False, empty: str = "No data in this window") -> str:
    """A line per name."""
    fig = _figure(title, y_title=y_title, percent=percent)
    if not series:
        return to_json(_empty(fig, empty))
    for name, (xs, ys) in series.items():
        fig.add_trace(go.Scatter(x=_times(xs), y=list(ys), mode="lines", name=name, line={"width": 1.5}))
    return to_json(fig)


# --- Traffic -----------------------------------------------------------------------------------------


def rate(times: Sequence[datetime], rates: Sequence[float]) -> str:
    fig = _figure("Request rate", y_title="requests / s", showlegend=False)
    if not times:
        return to_json(_empty(fig, "No profiled windows yet"))
    stamps = _times(times)
    fig.add_trace(go.Scatter(x=stamps, y=list(rates), mode="lines", line={"color": ACCENT, "width": 2},
                             fill="tozeroy", fillcolor="rgba(51,85,255,0.08)", name="rate"))
    return to_json(fig)


def _log_histogram(values: Sequence[int], edges: np.ndarray) -> tuple[list[float], list[int]]:
    counts, _ = np.histogram(np.asarray(values, dtype=float), bins=edges)
    centers = np.sqrt(edges[:-1] * edges[1:])
    return [float(x) for x in centers], [int(n) for n in counts]


def length_histogram(prompts: Sequence[int], outputs: Sequence[int]) -> str:
    """Prompt and output lengths of the latest requests, in bins even on a log axis (lengths span four orders)."""
    fig = _figure("Prompt and output lengths (latest requests)", y_title="requests", hovermode="closest")
    if not prompts:
        return to_json(_empty(fig, "No requests recorded yet"))
    top = max(max(prompts), max(outputs or [1]), 2)
    edges = np.geomspace(1, top * 1.01, 41)
    for name, values, color in (("prompt", prompts, ACCENT), ("output", outputs, "#f59e0b")):
        xs, ys = _log_histogram(values, edges)
        fig.add_trace(go.Scatter(x=xs, y=ys, name=name, mode="lines", line={"shape": "hvh", "color": color, "width": 1.5},
                                 fill="tozeroy", hovertemplate="~%{x:.0f} tokens: %{y} requests<extra>" + name + "</extra>"))
    fig.update_xaxes(title_text="tokens", type="log")
    return to_json(fig)


def length_percentiles(times: Sequence[datetime], columns: Mapping[str, Sequence[float | None]]) -> str:
    fig = _figure("Length percentiles per window", y_title="tokens")
    if not times:
        return to_json(_empty(fig, "No profiled windows yet"))
    stamps = _times(times)
    for name, values in columns.items():
        dash = "solid" if name.endswith("p50") else ("dash" if name.endswith("p90") else "dot")
        color = ACCENT if name.startswith("prompt") else "#f59e0b"
        fig.add_trace(go.Scatter(x=stamps, y=list(values), mode="lines", name=name.replace("_", " "),
                                 line={"color": color, "dash": dash, "width": 1.5}))
    return to_json(fig)


def workload_class(times: Sequence[datetime], classes: Sequence[str], confidence: Sequence[float | None],
                   prefill_share: Sequence[float | None]) -> str:
    """The class of each window (a marker, coloured) at the classifier's confidence, and the prefill share."""
    fig = _figure("Workload class and confidence", percent=True, y_range=[0, 1.05], hovermode="closest")
    if not times:
        return to_json(_empty(fig, "No profiled windows yet"))
    stamps = _times(times)
    fig.add_trace(go.Scatter(x=stamps, y=list(prefill_share), mode="lines", name="prefill share of GPU time",
                             line={"color": MUTED, "width": 1}))
    for name, color in CLASS_COLORS.items():
        picked = [i for i, value in enumerate(classes) if value == name]
        if picked:
            fig.add_trace(go.Scatter(
                x=[stamps[i] for i in picked], y=[confidence[i] for i in picked], mode="markers", name=name,
                marker={"color": color, "size": 6}, hovertemplate=name + " at %{y:.0%} confidence<extra></extra>",
            ))
    return to_json(fig)


def share_line(title: str, times: Sequence[datetime], values: Sequence[float | None]) -> str:
    fig = _figure(title, percent=True, y_range=[0, 1], showlegend=False)
    if not times:
        return to_json(_empty(fig, "No profiled windows yet"))
    stamps = _times(times)
    fig.add_trace(go.Scatter(x=stamps, y=list(values), mode="lines", line={"color": "#10b981", "width": 2}))
    return to_json(fig)


def phase_split(times: Sequence[datetime], prefill_s: Sequence[float], decode_s: Sequence[float]) -> str:
    """GPU-seconds each window spent in prefill and in decode, under the perf model: the phase cost split."""
    fig = _figure("Phase cost split (GPU-seconds per window)", y_title="GPU-s", barmode="stack")
    if not times:
        return to_json(_empty(fig, "No profiled windows yet"))
    stamps = _times(times)
    fig.add_trace(go.Bar(x=stamps, y=list(prefill_s), name="prefill", marker_color=ROLE_COLORS["prefill"]))
    fig.add_trace(go.Bar(x=stamps, y=list(decode_s), name="decode", marker_color=ROLE_COLORS["decode"]))
    return to_json(fig)


# --- Plans -------------------------------------------------------------------------------------------

_COMPARED = (("cost_usd_per_h", "Cost (USD / h)", False), ("power_kw", "Power (kW)", False),
             ("slo_attainment", "SLO attainment", True))


def _label(name: str) -> str:
    return name.replace("_", " ")


def plan_against_baselines(predictions: Mapping[str, Any], baselines: Mapping[str, Any]) -> str:
    """This plan's predicted cost, power and attainment beside each baseline's (three bar charts)."""
    columns: list[tuple[str, Mapping[str, Any]]] = [("this plan", predictions)]
    for name, baseline in baselines.items():
        if isinstance(baseline, Mapping) and baseline.get("feasible", True):
            columns.append((_label(name), baseline))
    fig = make_subplots(rows=1, cols=3, subplot_titles=[title for _, title, _ in _COMPARED], horizontal_spacing=0.08)
    for index, (key, _, percent) in enumerate(_COMPARED, start=1):
        names = [name for name, values in columns if isinstance(values.get(key), int | float)]
        values = [values[key] for _, values in columns if isinstance(values.get(key), int | float)]
        fig.add_trace(go.Bar(
            x=names, y=values, showlegend=False,
            marker_color=[ACCENT if name == "this plan" else MUTED for name in names],
            hovertemplate="%{x}: %{y:" + (".1%" if percent else ".2f") + "}<extra></extra>",
        ), row=1, col=index)
        if percent:
            fig.update_yaxes(tickformat=".0%", range=[0, 1.05], row=1, col=index)
    fig.update_layout(height=300, margin={"l": 48, "r": 16, "t": 40, "b": 80}, font=_FONT,
                      paper_bgcolor="#ffffff", plot_bgcolor="#ffffff")
    fig.update_yaxes(gridcolor="#eef0f3", rangemode="tozero")
    return to_json(fig)


# --- Classifiers -------------------------------------------------------------------------------------


def classifier_scores(versions: Sequence[str], model: Sequence[float | None], baseline: Sequence[float | None],
                      *, title: str, metric: str) -> str:
    """Each version's hold-out score beside its baseline's."""
    fig = _figure(title, y_title=metric, barmode="group", hovermode="closest")
    if not versions:
        return to_json(_empty(fig, "No versions trained yet"))
    fig.add_trace(go.Bar(x=list(versions), y=list(model), name="model", marker_color=ACCENT))
    fig.add_trace(go.Bar(x=list(versions), y=list(baseline), name="baseline", marker_color=MUTED))
    return to_json(fig)
