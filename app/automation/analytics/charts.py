"""Plotly figures for the dashboard, built from a :class:`Summary`.

Each function returns a ``plotly.graph_objects.Figure`` and knows nothing
of requests or templates; the view serialises them (``fig.to_json()``)
and static/analytics.js draws them with the locally served plotly.js.
A function returns None when it has nothing to draw: the page then says
"no data yet" instead of showing empty axes.
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app.automation.analytics.ab_testing import TEST_NAME, SplitResult
from app.automation.analytics.cohorts import Cohort
from app.automation.analytics.dashboard import Summary
from app.automation.analytics.paths import PathFunnel

OUTCOME_COLORS = {
    "Goal reached": "#16a34a",
    "Completed (no goal)": "#0ea5e9",
    "Failed": "#dc2626",
    "In progress / canceled": "#94a3b8",
}
END_COLORS = {
    "Dropped off": "#dc2626",
    "Completed": "#0ea5e9",
    "Goal reached": "#16a34a",
    "In progress": "#94a3b8",
}


# A small template of our own: "plotly_white" carries defaults for every
# trace type, and copying it into each figure cost ~0.1 s a figure.
AXIS = {"gridcolor": "#eef0f6", "linecolor": "#d0d5dd", "zerolinecolor": "#d0d5dd"}
TEMPLATE = {
    "layout": {
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "font": {"color": "#1e2433"},
        "xaxis": AXIS,
        "yaxis": AXIS,
        "colorway": ["#6366f1", "#0ea5e9", "#16a34a", "#a16207", "#dc2626", "#94a3b8"],
    }
}


def _layout(fig: go.Figure, title: str, **extra) -> go.Figure:
    settings = {
        "title": {"text": title, "x": 0, "xanchor": "left"},
        "margin": {"l": 50, "r": 20, "t": 50, "b": 40},
        "height": 340,
        "template": TEMPLATE,
        "legend": {"orientation": "h", "y": -0.2},
    }
    settings.update(extra)
    fig.update_layout(**settings)
    return fig


def executions_per_day(summary: Summary) -> go.Figure | None:
    """Executions started per day, stacked by how they ended."""
    if not summary.total:
        return None
    days = [d.day.isoformat() for d in summary.days]
    series = {
        "Goal reached": [d.goal_reached for d in summary.days],
        "Completed (no goal)": [d.completed - d.goal_reached for d in summary.days],
        "Failed": [d.failed for d in summary.days],
        "In progress / canceled": [d.other for d in summary.days],
    }
    fig = go.Figure(
        [
            go.Bar(name=name, x=days, y=values, marker_color=OUTCOME_COLORS[name])
            for name, values in series.items()
        ]
    )
    return _layout(fig, "Executions per day, by outcome", barmode="stack", yaxis_title="executions")


def flow_sankey(summary: Summary, links: list[dict], labels: dict[str, str]) -> go.Figure | None:
    """The flow from the trigger through every branch to goal or exit."""
    if not links:
        return None
    names: list[str] = []
    for link in links:
        for end in (link["source"], link["target"]):
            if end not in names:
                names.append(end)
    index = {name: i for i, name in enumerate(names)}
    fig = go.Figure(
        go.Sankey(
            arrangement="snap",
            node={
                "label": [labels.get(name, name) for name in names],
                "color": [END_COLORS.get(name, "#6366f1") for name in names],
                "pad": 18,
                "thickness": 16,
            },
            link={
                "source": [index[link["source"]] for link in links],
                "target": [index[link["target"]] for link in links],
                "value": [link["value"] for link in links],
            },
        )
    )
    return _layout(fig, "Flow: trigger → branches → goal or exit", height=420)


def path_funnels(funnels: list[PathFunnel]) -> go.Figure | None:
    """One funnel per way through the graph, stacked: parallel branches are
    separate funnels, never stages in a row."""
    if not funnels:
        return None
    fig = make_subplots(
        rows=len(funnels),
        cols=1,
        subplot_titles=[f"{f.label}: {f.reached_end} of {f.entered} to the end" for f in funnels],
        row_heights=[len(f.stages) for f in funnels],
        vertical_spacing=min(0.12, 0.4 / len(funnels)),
    )
    for row, funnel in enumerate(funnels, start=1):
        fig.add_trace(
            go.Funnel(
                name=funnel.label,
                y=[f"{i + 1}. {stage.label}" for i, stage in enumerate(funnel.stages)],
                x=[stage.entered for stage in funnel.stages],
                textinfo="value+percent initial",
                marker_color="#6366f1",
                customdata=[
                    [stage.goal, stage.finished, stage.dropped, stage.active]
                    for stage in funnel.stages
                ],
                hovertemplate=(
                    "%{y}: %{x} entered<br>ended here: %{customdata[0]} at a goal, "
                    "%{customdata[1]} completed, %{customdata[2]} dropped off, "
                    "%{customdata[3]} in progress<extra></extra>"
                ),
                showlegend=False,
            ),
            row=row,
            col=1,
        )
    stages = sum(len(f.stages) for f in funnels)
    return _layout(
        fig,
        "Funnel per path",
        height=120 + 44 * stages + 40 * len(funnels),
        margin={"l": 20, "r": 20, "t": 70, "b": 20},
    )


def cohort_heatmap(cohorts: list[Cohort]) -> go.Figure | None:
    """Cumulative goal conversion (% of entrants) by entry week and age."""
    if not cohorts:
        return None
    width = max(cohort.age_weeks for cohort in cohorts) + 1
    rows = [cohort.cumulative_rates() for cohort in cohorts]
    z = [[round(r, 1) for r in rates] + [None] * (width - len(rates)) for rates in rows]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[f"week {n}" for n in range(width)],
            y=[f"{c.week.isoformat()} ({c.entered})" for c in cohorts],
            text=[["" if v is None else f"{v:.0f}%" for v in line] for line in z],
            texttemplate="%{text}",
            colorscale="Greens",
            zmin=0,
            zmax=100,
            hovertemplate="entered the week of %{y}<br>%{x}: %{z:.1f}% reached a goal<extra></extra>",
            colorbar={"title": {"text": "%"}},
        )
    )
    return _layout(
        fig,
        "Goal reached by week since entry (cumulative), per entry week",
        height=140 + 36 * len(cohorts),
        yaxis={"autorange": "reversed", "type": "category"},
    )


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def completion_distribution(summary: Summary) -> go.Figure | None:
    """How long executions took from start to end (ended without failure)."""
    buckets = summary.histogram
    if not buckets:
        return None
    fig = go.Figure(
        go.Bar(
            x=[f"{_duration(b['start'])}–{_duration(b['end'])}" for b in buckets],
            y=[b["count"] for b in buckets],
            marker_color="#0ea5e9",
            name="executions",
        )
    )
    return _layout(fig, "Completion time distribution", yaxis_title="executions")


def goals_over_time(summary: Summary) -> go.Figure | None:
    """Goal conversions (bars) and their value (line) per day."""
    if not summary.goal_reached:
        return None
    days = [d.day.isoformat() for d in summary.days]
    fig = go.Figure(
        [
            go.Bar(
                name="Conversions",
                x=days,
                y=[d.goal_reached for d in summary.days],
                marker_color="#16a34a",
            ),
            go.Scatter(
                name="Value",
                x=days,
                y=[round(d.goal_value, 2) for d in summary.days],
                yaxis="y2",
                mode="lines+markers",
                line={"color": "#a16207"},
            ),
        ]
    )
    return _layout(
        fig,
        "Goal conversions and value per day",
        yaxis={"title": "conversions"},
        yaxis2={"title": "value", "overlaying": "y", "side": "right", "rangemode": "tozero"},
    )


def ab_comparison(splits: list[SplitResult]) -> go.Figure | None:
    """Conversion rate per variant with its 95% Wilson interval."""
    if not splits:
        return None
    fig = go.Figure()
    for split in splits:
        fig.add_trace(
            go.Bar(
                name=split.label,
                x=[f"{split.label}: {v.name}" for v in split.variants],
                y=[round(v.rate, 2) for v in split.variants],
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [round(v.ci_high - v.rate, 2) for v in split.variants],
                    "arrayminus": [round(v.rate - v.ci_low, 2) for v in split.variants],
                },
                text=[f"{v.conversions} of {v.entered}" for v in split.variants],
                hovertemplate="%{x}: %{y:.1f}% (%{text})<extra></extra>",
            )
        )
    return _layout(
        fig,
        f"A/B conversion rate with 95% intervals ({TEST_NAME})",
        yaxis={"title": "conversion rate (%)", "rangemode": "tozero"},
    )


def forecast_messages(days: list[dict]) -> go.Figure | None:
    """A forecast's messages per day (analytics/forecast.py), or None
    when it would send nothing."""
    if not any(day["count"] for day in days):
        return None
    fig = go.Figure(
        [
            go.Bar(
                name="Messages",
                x=[day["date"] for day in days],
                y=[day["count"] for day in days],
                marker_color="#6366f1",
            )
        ]
    )
    return _layout(fig, "Messages per day (forecast)", yaxis_title="messages", showlegend=False)
