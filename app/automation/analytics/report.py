"""Everything the analytics page shows for a period, in one call.

The numbers (:func:`dashboard.summarize`, the per-path funnels, the entry
week cohorts, all summed from the stored daily rows) and the Plotly figures drawn from them; a figure is None
when there is nothing to draw yet, so the page can say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import plotly.graph_objects as go

from app.automation.analytics import charts
from app.automation.analytics.cohorts import Cohort
from app.automation.analytics.dashboard import Summary, sankey_links, summarize
from app.automation.analytics.experiments import workflow_experiments
from app.automation.analytics.paths import PathFunnel, path_funnels
from app.automation.graph.definition import definition_of
from app.extensions import reads_analytics
from app.models import Workflow


@dataclass
class Report:
    summary: Summary
    funnels: list[PathFunnel] = field(default_factory=list)
    cohorts: list[Cohort] = field(default_factory=list)
    figures: dict[str, go.Figure | None] = field(default_factory=dict)
    # Every split as an experiment, over the whole history (docs/EXPERIMENTS.md).
    experiments: list[dict] = field(default_factory=list)


def analytics_page(workflow: Workflow, start: date, end: date) -> Report:
    """The period's report and the workflow's experiments. The experiments
    read the primary, not the analytics replica: reading one may record its
    decision (docs/EXPERIMENTS.md "Deciding a winner")."""
    report = dashboard_report(workflow, start, end)
    report.experiments = workflow_experiments(workflow)
    return report


@reads_analytics
def dashboard_report(workflow: Workflow, start: date, end: date) -> Report:
    summary = summarize(workflow, start, end)
    report = Report(summary)
    if summary.empty:
        return report
    definition = definition_of(workflow)
    # Both summed from the stored days (closed ones) and today's row.
    report.funnels = path_funnels(definition, taken=summary.path_outcomes)
    report.cohorts = summary.cohorts
    labels = {node["node_id"]: node["label"] or node["node_id"] for node in definition["nodes"]}
    report.figures = {
        "executions": charts.executions_per_day(summary),
        "goals": charts.goals_over_time(summary),
        "sankey": charts.flow_sankey(summary, sankey_links(workflow, summary), labels),
        "funnel": charts.path_funnels(report.funnels),
        "completion": charts.completion_distribution(summary),
        "cohorts": charts.cohort_heatmap(report.cohorts),
        "ab": charts.ab_comparison(summary.splits),
    }
    return report
