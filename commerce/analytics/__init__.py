"""Measurement: event tracking (``Tracker``), per-drop KPIs and comparisons
(``DropAnalytics``), the metric registry every screen reads (``metrics``), and the recap
chart (``chart.render_png``, imports matplotlib lazily)."""

from commerce.analytics.kpis import DropAnalytics
from commerce.analytics.results import DropKpis, DropSummary, to_json
from commerce.analytics.tracking import ActivityKind, Tracker

__all__ = [
    "ActivityKind",
    "DropAnalytics",
    "DropKpis",
    "DropSummary",
    "Tracker",
    "to_json",
]
