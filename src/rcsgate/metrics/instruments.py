"""The metrics this process records, and the calls that record them.

Each process counts what it did itself; Prometheus adds the processes up (``sum by (...)``). Under
`rcsgate api --workers N` the values live in files the N processes share (prometheus-client's
multiprocess mode, see ``multiprocess``), elsewhere in memory.

Message counts are taken from committed work only: a transaction collects what it changed in a
``Tally`` and the tally is published by ``store.db.after_commit`` once that transaction has
committed (never for one rolled back). Series are looked up once per label set and kept (``_Children``),
so a hot path pays for an increment, not for the label lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# No `…_created` series beside every counter and histogram: twice the series for a start time that
# process_start_time_seconds already tells.
disable_created_metrics()  # type: ignore[no-untyped-call]

# No connector: the message never reached one (expired in the queue, refused at acceptance, its
# campaign stopped).
NO_CONNECTOR: Final = "none"

ACCEPT_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
UPSTREAM_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Accepted → delivered: a second or two through a live upstream, hours for a handset that was off.
DELIVERY_BUCKETS: Final = (
    0.1,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
    7200.0,
    21600.0,
    86400.0,
    259200.0,
)

messages_accepted = Counter(
    "rcsgate_messages_accepted_total",
    "Messages stored by the API (with a message id), by channel and by source: api (single send) "
    "or campaign. Includes those refused at once with status failed (see transitions).",
    ["channel", "source"],
)
message_transitions = Counter(
    "rcsgate_message_transitions_total",
    "Committed message status changes, by the status entered and the connector that answered "
    "(none: no connector had it). A message stored already failed counts as entering failed. "
    "Claims (accepted -> sending) are counted by rcsgate_upstream_request_duration_seconds.",
    ["channel", "connector", "status"],
)
sms_fallbacks = Counter(
    "rcsgate_sms_fallbacks_total",
    "SMS alternatives created to be sent after their RCS message ended undelivered or expired, by why "
    "it ended (its fail reason when a known one, else its status).",
    ["reason"],
)
accept_duration = Histogram(
    "rcsgate_accept_duration_seconds",
    "Time to answer a send request (single: POST /api/messages/rcs/send, served by the fast lane; "
    "campaign: POST /api/campaigns/rcs/send and /send-groups), from the handler's start to its answer; "
    "outcome accepted (2xx) or refused (an error answer).",
    ["endpoint", "outcome"],
    buckets=ACCEPT_BUCKETS,
)
upstream_request_duration = Histogram(
    "rcsgate_upstream_request_duration_seconds",
    "Calls to a connector's upstream (submit, revoke), by the answer: accepted, not_capable, rejected, "
    "try_later, error (the connector raised), revoked, already_delivered. Calls refused without "
    "reaching the upstream (circuit open, stopping) are not counted.",
    ["connector", "operation", "outcome"],
    buckets=UPSTREAM_BUCKETS,
)
delivery_latency = Histogram(
    "rcsgate_delivery_latency_seconds",
    "From when a message became due to be sent (accepted, or its scheduled campaign's start) to its "
    "delivery as the upstream reported it.",
    ["channel", "connector"],
    buckets=DELIVERY_BUCKETS,
)
webhook_deliveries = Counter(
    "rcsgate_webhook_deliveries_total",
    "Webhook POST attempts recorded, by outcome (delivered; retry: to be tried again; failed: given up) "
    "and the receiver's status class (2xx..5xx, none: no HTTP answer).",
    ["outcome", "status_class"],
)
circuit_open = Gauge(
    "rcsgate_circuit_open",
    "1 while a connector's circuit breaker refuses calls (open, or half-open waiting for its probe), "
    "else 0; per process: aggregate with max by (connector).",
    ["connector"],
    multiprocess_mode="livemax",
)


class _Children:
    """A metric's series by label values, each looked up once."""

    def __init__(self, metric: Counter | Gauge | Histogram) -> None:
        self.metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *labels: str) -> Any:
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = self.metric.labels(*labels)
        return child


_accepted = _Children(messages_accepted)
_transitions = _Children(message_transitions)
_fallbacks = _Children(sms_fallbacks)
_accept = _Children(accept_duration)
_upstream = _Children(upstream_request_duration)
_delivery = _Children(delivery_latency)
_webhooks = _Children(webhook_deliveries)
_circuits = _Children(circuit_open)

# Fail reasons of an RCS message that ends undelivered or expired, as sms_fallbacks_total's reason;
# any other (an SMSC's receipt text, say) is shown as the status it ended in.
_FALLBACK_REASONS: Final = frozenset({"not_rcs_user", "undelivered", "validity", "upstream_unavailable"})


def fallback_reason(status: str, fail_reason: str | None) -> str:
    return fail_reason if fail_reason in _FALLBACK_REASONS else status


def delivery_seconds(row: Any, at: datetime | None) -> float | None:
    """From when a message became due to be sent to ``at``. Validity runs from that moment
    (acceptance; a scheduled campaign's start; a fallback's creation), so it is ``expires_at -
    validity``, never before the message was created. None when the row cannot tell."""
    created, expires, validity = row.get("created_at"), row.get("expires_at"), row.get("validity_seconds")
    if at is None or created is None:
        return None
    try:
        seconds: float = (at - created).total_seconds()
        if expires is not None and validity is not None:
            seconds = min(seconds, (at - expires).total_seconds() + validity)
    except TypeError:  # a naive time beside an aware one: not worth failing a transition over
        return None
    return max(seconds, 0.0)


class Tally:
    """What one transaction changed, published once it has committed (``after_commit(t.publish)``)."""

    __slots__ = ("accepted", "deliveries", "fallbacks", "transitions")

    def __init__(self) -> None:
        self.transitions: dict[tuple[str, str, str], int] = {}
        self.accepted: dict[tuple[str, str], int] = {}
        self.fallbacks: dict[str, int] = {}
        self.deliveries: list[tuple[str, str, float]] = []

    def __bool__(self) -> bool:
        return bool(self.transitions or self.accepted or self.fallbacks or self.deliveries)

    def moved(self, channel: str, connector: str | None, status: str, count: int = 1) -> None:
        key = (channel, connector or NO_CONNECTOR, status)
        self.transitions[key] = self.transitions.get(key, 0) + count

    def stored(self, channel: str, source: str, count: int = 1) -> None:
        key = (channel, source)
        self.accepted[key] = self.accepted.get(key, 0) + count

    def fallback(self, reason: str) -> None:
        self.fallbacks[reason] = self.fallbacks.get(reason, 0) + 1

    def delivered(self, channel: str, connector: str | None, seconds: float | None) -> None:
        if seconds is not None:
            self.deliveries.append((channel, connector or NO_CONNECTOR, seconds))

    def publish(self) -> None:
        for (channel, source), n in self.accepted.items():
            _accepted(channel, source).inc(n)
        for (channel, connector, status), n in self.transitions.items():
            _transitions(channel, connector, status).inc(n)
        for reason, n in self.fallbacks.items():
            _fallbacks(reason).inc(n)
        for channel, connector, seconds in self.deliveries:
            _delivery(channel, connector).observe(seconds)


def accept_timer(endpoint: str) -> tuple[Callable[[float], None], Callable[[float], None]]:
    """(accepted, refused): each observes one request's duration in seconds under ``endpoint``."""
    return _accept(endpoint, "accepted").observe, _accept(endpoint, "refused").observe


def upstream_call(connector: str, operation: str, outcome: str, seconds: float) -> None:
    _upstream(connector, operation, outcome).observe(seconds)


def webhook_attempts(counts: dict[tuple[str, str], int]) -> None:
    """``counts``: attempts by (outcome, status class)."""
    for (outcome, status_class), n in counts.items():
        _webhooks(outcome, status_class).inc(n)


def status_class(code: int | None) -> str:
    return f"{code // 100}xx" if code is not None and 100 <= code < 600 else "none"


def circuit(connector: str, is_open: bool) -> None:
    _circuits(connector).set(1 if is_open else 0)
