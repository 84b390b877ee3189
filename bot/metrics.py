"""Prometheus metrics (SPEC §4), on a registry of their own so that every bridge in a process counts alone."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bot.store import ItemKind


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.updates_received = Counter(
            "omi_bridge_updates_received", "Inbound platform payloads accepted", ["platform"], registry=self.registry
        )
        self.items_queued = Counter(
            "omi_bridge_items_queued", "Omi writes queued in the outbox", ["kind"], registry=self.registry
        )
        self.items_delivered = Counter(
            "omi_bridge_items_delivered", "Omi writes confirmed by Omi", ["kind"], registry=self.registry
        )
        self.items_failed = Counter(
            "omi_bridge_items_failed", "Omi writes failed for good", ["kind", "reason"], registry=self.registry
        )
        self.queue_depth = Gauge("omi_bridge_queue_depth", "Items waiting for Omi", registry=self.registry)
        self.oldest_pending = Gauge(
            "omi_bridge_oldest_pending_seconds", "Age of the oldest item waiting for Omi", registry=self.registry
        )
        self.omi_request_duration = Histogram(
            "omi_bridge_omi_request_duration_seconds",
            "Omi API requests by route and status",
            ["route", "status"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 150),
            registry=self.registry,
        )
        self._last_omi_status: str | None = None
        self._received: dict[str, Counter] = {}

    def received(self, platform: str) -> None:
        # On every request: the labelled child is looked up once per platform.
        child = self._received.get(platform)
        if child is None:
            child = self._received[platform] = self.updates_received.labels(platform=platform)
        child.inc()

    def queued(self, kind: ItemKind, count: int = 1) -> None:
        self.items_queued.labels(kind=kind.value).inc(count)

    def delivery_result(self, kind: ItemKind, result: str, reason: str = "") -> None:
        if result == "delivered":
            self.items_delivered.labels(kind=kind.value).inc()
        elif result == "failed":
            self.items_failed.labels(kind=kind.value, reason=reason or "other").inc()

    def omi_request(self, route: str, status: str, seconds: float) -> None:
        self.omi_request_duration.labels(route=route, status=status).observe(seconds)
        self._last_omi_status = status

    def omi_health(self) -> str:
        """Omi as the last request saw it: an outage shows here, never in /healthz's status code."""
        status = self._last_omi_status
        if status is None:
            return "unknown (no request yet)"
        if status == "429":
            return "rate limited"
        if status.isdigit() and int(status) < 500:
            return "ok"
        return f"degraded ({status})"

    def render(self, queue_depth: int, oldest_pending_seconds: float) -> bytes:
        self.queue_depth.set(queue_depth)
        self.oldest_pending.set(oldest_pending_seconds)
        return generate_latest(self.registry)
