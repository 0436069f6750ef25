"""Request counters and latency histograms, rendered in the Prometheus text format.

Hand-rolled (no prometheus_client dependency): one lock-protected table per process. With
several uvicorn workers each process counts its own requests; a scrape sees one worker.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

#: Upper bounds (seconds) of the latency histogram buckets.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    """Counts of requests by (route, method, status) and a latency histogram per route."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, int], int] = {}
        self._latency: dict[str, list[float]] = {}  # per route: bucket counts, sum, count
        self._info: dict[str, str] = {}

    def set_info(self, **labels: str) -> None:
        """Labels of the ``dotrec_model_info`` gauge (the model being served)."""
        with self._lock:
            self._info = dict(labels)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Record one finished request."""
        with self._lock:
            key = (route, method, status)
            self._requests[key] = self._requests.get(key, 0) + 1
            h = self._latency.setdefault(route, [0.0] * (len(BUCKETS) + 2))
            for b, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    h[b] += 1
            h[-2] += seconds
            h[-1] += 1

    def render(self) -> str:
        """All metrics in the Prometheus text exposition format (version 0.0.4)."""
        with self._lock:
            requests = sorted(self._requests.items())
            latency = sorted((r, list(h)) for r, h in self._latency.items())
            info = dict(self._info)
        lines = [
            "# HELP dotrec_http_requests_total HTTP requests by route, method and status.",
            "# TYPE dotrec_http_requests_total counter",
        ]
        for (route, method, status), n in requests:
            lines.append(
                f'dotrec_http_requests_total{{route="{_label(route)}",'
                f'method="{_label(method)}",status="{status}"}} {n}'
            )
        lines += [
            "# HELP dotrec_http_request_duration_seconds Request latency by route.",
            "# TYPE dotrec_http_request_duration_seconds histogram",
        ]
        for route, h in latency:
            r = _label(route)
            for bound, count in zip(BUCKETS, h):
                lines.append(
                    f'dotrec_http_request_duration_seconds_bucket{{route="{r}",'
                    f'le="{bound}"}} {int(count)}'
                )
            lines.append(
                f'dotrec_http_request_duration_seconds_bucket{{route="{r}",le="+Inf"}} {int(h[-1])}'
            )
            lines.append(f'dotrec_http_request_duration_seconds_sum{{route="{r}"}} {h[-2]!r}')
            lines.append(f'dotrec_http_request_duration_seconds_count{{route="{r}"}} {int(h[-1])}')
        if info:
            labels = ",".join(f'{k}="{_label(v)}"' for k, v in sorted(info.items()))
            lines += [
                "# HELP dotrec_model_info The model being served.",
                "# TYPE dotrec_model_info gauge",
                f"dotrec_model_info{{{labels}}} 1",
            ]
        return "\n".join(lines) + "\n"


class MetricsMiddleware:
    """ASGI middleware timing every HTTP request into :class:`Metrics`.

    The route label is the matched path template (``/users/{user_id}/recommendations``), so
    ids do not explode the label set. Fixed-path routes that the router does not record
    (``/docs``, ``/openapi.json``) are labelled by their path; requests that match no route
    (404) count as ``unmatched``.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            path = getattr(scope.get("route"), "path", None)
            if path is None:
                path = "unmatched" if status[0] == 404 else str(scope.get("path", ""))
            self.metrics.observe(
                path, scope.get("method", ""), status[0], time.perf_counter() - start
            )
