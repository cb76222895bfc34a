"""Measurement: event tracking (``tracking.Tracker``), per-drop KPIs and comparisons
(``kpis.DropAnalytics``, ``results``), the metric registry every screen reads
(``metrics``), and the recap chart (``chart.render_png``, imports matplotlib lazily).

Import from the modules: the registry sits below the services (the drop file checks its
objective against it), while tracking and KPIs sit above them, so this package re-exports
nothing that would drag the services in."""
