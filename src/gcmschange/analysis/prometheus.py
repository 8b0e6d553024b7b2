"""The one place gcmschange talks to Prometheus: its HTTP API, with `requests`.

The server is the one the policy names for the environment (`analysis.prometheus`): the
policy is a rules file, read from the protected branch, so a merge request cannot point the
analysis at a server of its own that would answer "healthy". Every failure to get a number
(refused, timed out, a PromQL error, a result that is not one number) is a `PrometheusError`
naming the server and why; the analysis turns it into an "error" measurement, never a pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from gcmschange.errors import ExternalError, InvalidInputError

TIMEOUT = 3.0  # seconds; a measurement that takes longer is not one


class PrometheusError(ExternalError):
    """Prometheus could not be asked, or its answer is not a usable number."""


@dataclass(frozen=True)
class Endpoint:
    url: str  # http://ADDRESS:PORT, no trailing slash

    @classmethod
    def of(cls, url: str) -> Endpoint:
        """Check that `url` is an http(s) server address: no credentials (they would be
        printed with it in every message), no query."""
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise InvalidInputError(f"prometheus {url!r}: expected http(s)://HOST[:PORT][/PATH]")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise InvalidInputError(
                f"prometheus {parts.scheme}://{parts.hostname}: no credentials or query in the "
                "URL (put a proxy or network policy in front instead)"
            )
        return cls(f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}")


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


def _point(raw: Any, where: str) -> tuple[float, float]:
    try:
        moment = float(raw[0])
    except (TypeError, ValueError, IndexError) as exc:
        raise PrometheusError(f"{where}: sample {raw!r} has no time") from exc
    return moment, _float(raw, where)


def query(endpoint: Endpoint, promql: str, at: datetime | None = None) -> tuple[Series, ...]:
    """An instant query, now or `at`: every series it returns (a scalar comes back as one)."""
    params = {"query": promql}
    if at is not None:  # the status site asks as of its own `now`, so a rebuild agrees
        params["time"] = f"{at.timestamp():.3f}"
    data = _get(endpoint, "/api/v1/query", params)
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


@dataclass(frozen=True)
class RangeSeries:
    labels: dict[str, str]
    points: tuple[tuple[float, float], ...]  # (POSIX seconds, value), oldest first


# Prometheus refuses a range query of more than 11,000 points per series.
MAX_POINTS = 10_000


def query_range(
    endpoint: Endpoint, promql: str, start: datetime, end: datetime, step: float
) -> tuple[RangeSeries, ...]:
    """A range query from `start` to `end`, one point every `step` seconds (at most
    `MAX_POINTS`: ask for a longer span in pieces)."""
    if (end - start).total_seconds() / step > MAX_POINTS:
        raise InvalidInputError(f"prometheus range query: more than {MAX_POINTS} points")
    params = {
        "query": promql,
        "start": f"{start.timestamp():.3f}",
        "end": f"{end.timestamp():.3f}",
        "step": f"{step:g}",
    }
    data = _get(endpoint, "/api/v1/query_range", params)
    where = f"prometheus {endpoint.url}"
    result = data.get("result") if isinstance(data, dict) else None
    if (
        not isinstance(data, dict)
        or data.get("resultType") != "matrix"
        or not isinstance(result, list)
    ):
        raise PrometheusError(f"{where}: expected a range vector")
    return tuple(
        RangeSeries(
            {str(k): str(v) for k, v in (s.get("metric") or {}).items()},
            tuple(_point(p, where) for p in s.get("values") or ()),
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
