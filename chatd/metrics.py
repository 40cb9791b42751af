"""Counters for /metrics, rendered in the Prometheus text exposition format."""


class HttpStats:
    def __init__(self):
        self.requests: dict[tuple[str, int], int] = {}
        self.in_flight = 0

    def count(self, method: str, status: int) -> None:
        key = (method, status)
        self.requests[key] = self.requests.get(key, 0) + 1


def _line(out: list, name: str, value, labels: dict | None = None) -> None:
    if labels:
        inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
        out.append(f"{name}{{{inner}}} {value}")
    else:
        out.append(f"{name} {value}")


def _head(out: list, name: str, kind: str, help_text: str) -> None:
    out.append(f"# HELP {name} {help_text}")
    out.append(f"# TYPE {name} {kind}")


def _histogram(out: list, name: str, help_text: str, buckets: dict, total_count: int, total_sum: float):
    _head(out, name, "histogram", help_text)
    running = 0
    for bound, n in buckets.items():
        running += n
        _line(out, f"{name}_bucket", running, {"le": "+Inf" if bound == float("inf") else bound})
    _line(out, f"{name}_sum", total_sum)
    _line(out, f"{name}_count", total_count)


def render(*, uptime: float, http: HttpStats, gateways: dict, bus, writer) -> str:
    out: list[str] = []
    _head(out, "chatd_uptime_seconds", "gauge", "Seconds since the server started.")
    _line(out, "chatd_uptime_seconds", round(uptime, 3))
    _head(out, "chatd_http_requests_total", "counter", "HTTP requests answered, by method and status.")
    for (method, status), n in sorted(http.requests.items()):
        _line(out, "chatd_http_requests_total", n, {"method": method, "status": status})
    _head(out, "chatd_http_requests_in_flight", "gauge", "HTTP requests being handled.")
    _line(out, "chatd_http_requests_in_flight", http.in_flight)
    _head(out, "chatd_connections_open", "gauge", "Open client connections, by gateway.")
    for name, stats in gateways.items():
        _line(out, "chatd_connections_open", stats.open, {"gateway": name})
    _head(out, "chatd_connections_accepted_total", "counter", "Client connections accepted, by gateway.")
    for name, stats in gateways.items():
        _line(out, "chatd_connections_accepted_total", stats.accepted, {"gateway": name})
    _head(out, "chatd_frames_sent_total", "counter", "Frames written to clients, by gateway.")
    for name, stats in gateways.items():
        _line(out, "chatd_frames_sent_total", stats.frames_sent, {"gateway": name})
    _head(out, "chatd_slow_consumers_dropped_total", "counter", "Connections closed because their outbound queue was full.")
    _line(out, "chatd_slow_consumers_dropped_total", sum(s.slow_consumers for s in gateways.values()))
    _head(out, "chatd_events_published_total", "counter", "Domain events published on the bus.")
    _line(out, "chatd_events_published_total", bus.position)
    _head(out, "chatd_events_delivered_total", "counter", "Events queued to subscribed sessions.")
    _line(out, "chatd_events_delivered_total", bus.delivered)
    _head(out, "chatd_bus_subscribers", "gauge", "Live bus subscriptions.")
    _line(out, "chatd_bus_subscribers", bus.subscriber_count)
    _histogram(out, "chatd_store_commit_batch_size", "Writes per LMDB group commit.",
               writer.batch_buckets, writer.commits, writer.writes)
    _histogram(out, "chatd_store_commit_seconds", "Duration of LMDB group commits.",
               writer.latency_buckets, writer.commits, round(writer.commit_seconds, 6))
    return "\n".join(out) + "\n"
