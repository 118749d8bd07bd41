"""Interactive curves for the HTML report, drawn with plotly.

Hover shows each value, a click on a legend entry hides that configuration (its band too),
drag zooms, and two buttons switch the y-axis between linear and log. plotly's JavaScript is
embedded once per page (`plotly_script`), so the report works offline. The colours and dash
patterns are those of the static figures (`annealbench.analysis.style.looks`).
"""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from annealbench.analysis.curves import TaskCurves, pointwise_band
from annealbench.analysis.panels import MAX_POINTS, log_scale_fits

DASHES = {"-": "solid", "--": "dash", "-.": "dashdot", ":": "dot"}


def plotly_script() -> str:
    """plotly.js as one inline <script> element (about 4.7 MB), for the page's <head>."""
    return f"<script type='text/javascript'>{get_plotlyjs()}</script>"


def _rgb(colour, alpha: float = 1.0) -> str:
    r, g, b = (round(255 * v) for v in colour[:3])
    return f"rgba({r},{g},{b},{alpha})"


def _finite(x: np.ndarray) -> list:
    return [None if not np.isfinite(v) else float(v) for v in x]


def _traces(fig: go.Figure, tc: TaskCurves, looks: dict, level: float) -> None:
    mean, lo, hi = pointwise_band(tc.values, level)
    every = max(1, tc.steps.size // MAX_POINTS)
    x = tc.steps[::every].tolist()
    for c, config in enumerate(tc.configs):
        look = looks[config]
        group = dict(legendgroup=config, x=x, mode="lines")
        fig.add_trace(go.Scatter(y=_finite(hi[c, ::every]), line=dict(width=0), showlegend=False,
                                 hoverinfo="skip", **group))
        fig.add_trace(go.Scatter(y=_finite(lo[c, ::every]), line=dict(width=0), fill="tonexty",
                                 fillcolor=_rgb(look.colour, 0.15), showlegend=False, hoverinfo="skip", **group))
        fig.add_trace(go.Scatter(
            y=_finite(mean[c, ::every]), name=config, line=dict(color=_rgb(look.colour), dash=DASHES[look.line]),
            hovertemplate=f"{html.escape(config)}<br>step %{{x}}<br>{tc.metric} %{{y:.4g}}<extra></extra>", **group))


def curve_plot(tc: TaskCurves, looks: dict, level: float, div_id: str, label: str | None = None) -> str:
    """One task's curves (mean over seeds, pointwise t-band) as an HTML <div> for a page that
    already holds `plotly_script()`; `label` names the y axis (default: the metric's name)."""
    fig = go.Figure()
    _traces(fig, tc, looks, level)
    start = "log" if log_scale_fits(pointwise_band(tc.values, level)[0]) else "linear"
    buttons = [dict(label=f"{kind} y", method="relayout", args=[{"yaxis.type": kind}]) for kind in ("linear", "log")]
    fig.update_layout(
        title=dict(text=f"{tc.task}: {tc.metric}<br><sup>mean over seeds, pointwise {100 * level:g}% band</sup>",
                   font_size=13, x=0.01, xanchor="left", y=0.97),
        xaxis_title="step", yaxis_title=label or tc.metric, yaxis_type=start, template="simple_white",
        height=400, margin=dict(l=60, r=20, t=80, b=50), hovermode="x unified",
        legend=dict(orientation="h", yanchor="top", y=-0.2, x=0, font_size=11),
        updatemenus=[dict(type="buttons", direction="right", buttons=buttons, x=1, xanchor="right", y=1.01,
                          yanchor="bottom", active=("linear", "log").index(start), showactive=True,
                          font_size=11, pad=dict(t=0, b=0))])
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                       config={"displaylogo": False, "responsive": True})
