"""The one place gcmschange talks to Prometheus: its HTTP API, with `requests`.

Only loopback and the lab's private networks are spoken to: the analysis server is on the
controller's side of the network, and a measurement that could be sent anywhere could be
answered by anyone. Every failure to get a number (refused, timed out, a PromQL error, a
result that is not one number) is a `PrometheusError` naming the server and why; the analysis
turns it into an "error" measurement, never into a pass.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from gcmschange.errors import ExternalError, InvalidInputError

TIMEOUT = 3.0  # seconds; a measurement that takes longer is not one
# Loopback, and the 10.77.0.0/16 range the lab's bridges take (gcmschange.lab.registry).
ALLOWED = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("10.77.0.0/16"))


class PrometheusError(ExternalError):
    """Prometheus could not be asked, or its answer is not a usable number."""


@dataclass(frozen=True)
class Endpoint:
    url: str  # http://ADDRESS:PORT, no trailing slash

    @classmethod
    def of(cls, url: str) -> Endpoint:
        """Check that `url` is plain http on loopback or a lab network."""
        parts = urlsplit(url)
        try:
            address = ipaddress.ip_address(parts.hostname or "")
        except ValueError as exc:
            raise InvalidInputError(
                f"prometheus {url!r}: give an IP address (loopback or the lab's network)"
            ) from exc
        if parts.scheme != "http" or not any(address in net for net in ALLOWED):
            allowed = ", ".join(str(n) for n in ALLOWED)
            raise InvalidInputError(f"prometheus {url!r}: only http on {allowed} is spoken to")
        return cls(f"http://{parts.netloc}")


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    value: float


def _get(endpoint: Endpoint, path: str, params: dict[str, str]) -> Any:
    where = f"prometheus {endpoint.url}"
    try:
        reply = requests.get(f"{endpoint.url}{path}", params=params, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise PrometheusError(f"{where}: unreachable ({type(exc).__name__})") from exc
    try:
        body = reply.json()
    except ValueError as exc:
        raise PrometheusError(f"{where}: HTTP {reply.status_code}, not a JSON answer") from exc
    if not isinstance(body, dict) or body.get("status") != "success":
        error = body.get("error", f"HTTP {reply.status_code}") if isinstance(body, dict) else "?"
        raise PrometheusError(f"{where}: {str(error)[:200]}")
    return body.get("data")


def _float(raw: Any, where: str) -> float:
    try:
        return float(raw[1])
    except (TypeError, ValueError, IndexError) as exc:
        raise PrometheusError(f"{where}: sample {raw!r} is not a number") from exc


def query(endpoint: Endpoint, promql: str) -> tuple[Series, ...]:
    """An instant query: every series it returns (a scalar comes back as one series)."""
    data = _get(endpoint, "/api/v1/query", {"query": promql})
    where = f"prometheus {endpoint.url}"
    kind = data.get("resultType") if isinstance(data, dict) else None
    result = data.get("result") if isinstance(data, dict) else None
    if kind == "scalar":
        return (Series({}, _float(result, where)),)
    if kind != "vector" or not isinstance(result, list):
        raise PrometheusError(f"{where}: expected an instant vector, got {kind!r}")
    return tuple(
        Series(
            {str(k): str(v) for k, v in (s.get("metric") or {}).items()}, _float(s["value"], where)
        )
        for s in result
    )


def value(endpoint: Endpoint, promql: str) -> float:
    """The query's one number: NaN when it returns no series (no data), an error when it
    returns several (aggregate them in the query: sum, max, ...)."""
    found = query(endpoint, promql)
    if not found:
        return math.nan
    if len(found) > 1:
        raise PrometheusError(
            f"prometheus {endpoint.url}: the query returned {len(found)} series, expected one "
            "(aggregate it with sum(...) or max(...))"
        )
    return found[0].value


def ready(endpoint: Endpoint) -> bool:
    try:
        reply = requests.get(f"{endpoint.url}/-/ready", timeout=TIMEOUT)
    except requests.RequestException:
        return False
    return reply.status_code == 200
