"""Prometheus metrics, one registry per app so tests and several apps never share counters."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.claims = Counter(
            "dropcast_claims_total",
            "Claims over HTTP by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.holds = Counter(
            "dropcast_holds_total", "Holds placed (any entrypoint)", registry=self.registry
        )
        self.sold_outs = Counter(
            "dropcast_sold_outs_total", "Drops that ran out of stock", registry=self.registry
        )
        self.gated = Counter(
            "dropcast_sold_out_gate_total",
            "Sold-out answers served from memory without a database round trip",
            registry=self.registry,
        )
        self.payments = Counter(
            "dropcast_payments_total",
            "Payment outcomes by provider",
            ["provider", "outcome"],
            registry=self.registry,
        )
        self._latency_of: dict[tuple[str, str, int], Histogram] = {}
        self.latency = Histogram(
            "dropcast_http_request_duration_seconds",
            "HTTP request latency by route",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def watch_line(self, passed_over: Callable[[], int], on_the_way: Callable[[], int]) -> None:
        """The claim line (``ArrivalLine``), read when scraped: how many places it passed
        over (a claimant slower than its patience lost its place: fairness at risk), and
        how many are on their way now."""
        self.registry.register(_LineCollector(passed_over, on_the_way))

    def request_done(self, method: str, route: str, status: int, seconds: float) -> None:
        """One request's latency. Each label set's histogram is looked up once: ``labels()``
        takes a lock and formats the labels, a cost on every request of a hot route."""
        key = (method, route, status)
        histogram = self._latency_of.get(key)
        if histogram is None:
            histogram = self._latency_of[key] = self.latency.labels(method, route, str(status))
        histogram.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _LineCollector(Collector):
    def __init__(self, passed_over: Callable[[], int], on_the_way: Callable[[], int]) -> None:
        self._passed_over = passed_over
        self._on_the_way = on_the_way

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "dropcast_claim_places_passed_over",
            "Claims whose place in line was passed over: they took longer than the line's "
            "patience to reach their drop's queue",
            value=self._passed_over(),
        )
        yield GaugeMetricFamily(
            "dropcast_claim_places_on_the_way",
            "Claims that have their place in line and are not yet queued",
            value=self._on_the_way(),
        )
