"""Plotly figures for the dashboard, built from a :class:`Summary`.

Each function returns a ``plotly.graph_objects.Figure`` and knows nothing
of requests or templates; the view serialises them (``fig.to_json()``)
and static/analytics.js draws them with the locally served plotly.js.
"""

from __future__ import annotations

import plotly.graph_objects as go

from app.automation.analytics.ab_testing import TEST_NAME, SplitResult
from app.automation.analytics.dashboard import Summary

OUTCOME_COLORS = {
    "Goal reached": "#16a34a",
    "Completed (no goal)": "#0ea5e9",
    "Failed": "#dc2626",
    "In progress / canceled": "#94a3b8",
}
END_COLORS = {"Dropped off": "#dc2626", "Goal reached": "#16a34a", "In progress": "#94a3b8"}


def _layout(fig: go.Figure, title: str, **extra) -> go.Figure:
    settings = {
        "title": {"text": title, "x": 0, "xanchor": "left"},
        "margin": {"l": 50, "r": 20, "t": 50, "b": 40},
        "height": 340,
        "template": "plotly_white",
        "legend": {"orientation": "h", "y": -0.2},
    }
    settings.update(extra)
    fig.update_layout(**settings)
    return fig


def executions_per_day(summary: Summary) -> go.Figure:
    """Executions started per day, stacked by how they ended."""
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


def flow_sankey(summary: Summary, links: list[dict], labels: dict[str, str]) -> go.Figure:
    """The flow from the trigger through every branch to goal or exit."""
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


def drop_off_funnel(summary: Summary) -> go.Figure:
    """Per node, in graph order: contacts who entered and who stopped there."""
    rows = [(key, e) for key, e in summary.node_performance.items() if e["visits"]]
    labels = [e.get("label") or key for key, e in rows]
    fig = go.Figure(
        [
            go.Funnel(
                name="Entered",
                y=labels,
                x=[e["visits"] for _, e in rows],
                textinfo="value+percent initial",
                marker_color="#6366f1",
            ),
            go.Funnel(
                name="Stopped here",
                y=labels,
                x=[e["stopped"] for _, e in rows],
                textinfo="value",
                marker_color="#dc2626",
            ),
        ]
    )
    return _layout(fig, "Funnel and drop-off per node")


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def completion_distribution(summary: Summary) -> go.Figure:
    """How long executions took from start to end (ended without failure)."""
    buckets = summary.histogram
    fig = go.Figure(
        go.Bar(
            x=[f"{_duration(b['start'])}–{_duration(b['end'])}" for b in buckets],
            y=[b["count"] for b in buckets],
            marker_color="#0ea5e9",
            name="executions",
        )
    )
    return _layout(fig, "Completion time distribution", yaxis_title="executions")


def goals_over_time(summary: Summary) -> go.Figure:
    """Goal conversions (bars) and their value (line) per day."""
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


def ab_comparison(splits: list[SplitResult]) -> go.Figure:
    """Conversion rate per variant with its 95% Wilson interval."""
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
