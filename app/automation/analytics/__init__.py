"""Analytics: where contacts convert and drop off.

``queries`` holds the SQL aggregates, ``calculator`` the seed's
``AnalyticsCalculator``, ``daily`` the periodic job, ``goals`` goal
totals, ``ab_testing`` split statistics and ``charts`` the Plotly figures.
"""

from __future__ import annotations

from app.automation.analytics.calculator import AnalyticsCalculator, node_live_counts
from app.automation.analytics.daily import run_daily_analytics

__all__ = ["AnalyticsCalculator", "node_live_counts", "run_daily_analytics"]
