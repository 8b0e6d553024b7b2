"""Case 8, the added cost of canary analysis per wave (bake time aside).

A wave's analysis waits by design: the bake, then `count` measurements `interval` apart (with
the reference estate's defaults, 10 s + 6 s). This case measures what it costs beyond that
waiting: the estate's default checks of a wave on the portal and the case API (7 checks, 20
measurements) taken back to back (interval 0, bake 0) against a real Prometheus (Debian's, on a
loopback port, with 1 s scrapes of probe metrics for 20 hosts, as the lab's load generator
serves them). The peer is the least anything can do for the same answers: the same bound
PromQL queries sent with plain `requests.get`, one after the other, values not judged.
"""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from dataclasses import replace
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from benchmarks.common import Row, median, rotate
from benchmarks.fleet import BenchError
from gcmschange.analysis import measure, prometheus
from gcmschange.analysis.templates import Check, load_estate_analysis
from gcmschange.errors import GcmsError
from gcmschange.lab import loadgen, monitoring
from gcmschange.resources import reference_estate

HOSTS = 20
WAVE = {"portal": ["portal-1", "portal-2"], "case_api": ["case-api-1"]}


def _synthetic_counts() -> loadgen.Counts:
    """Probe metrics for 20 hosts, with traffic and a few errors, as the load generator's."""
    targets = [
        loadgen.Target(system, f"{system.replace('_', '-')}-{n}", "127.0.0.1", 80, "/")
        for system in ("portal", "case_api")
        for n in range(1, HOSTS // 2 + 1)
    ]
    counts = loadgen.Counts()
    counts.prime(targets)
    return counts


def _serve(counts: loadgen.Counts) -> ThreadingHTTPServer:
    """Probe metrics (1 request in 50 failing: a healthy wave, so no check stops early) and
    each host's nginx_up, as the exporter gives it."""
    targets = sorted({(s, h) for s, h, _c in counts.codes})
    up = "".join(f'nginx_up{{system="{s}",host="{h}"}} 1\n' for s, h in targets)

    def page() -> str:
        for system, host in targets:  # traffic grows between scrapes, so rate() is real
            key = loadgen.Target(system, host, "127.0.0.1", 80, "/")
            for _ in range(49):
                counts.add(key, "200", 0.004)
            counts.add(key, "503", 0.002)
        return counts.exposition() + up

    server = loadgen.metrics_server(("127.0.0.1", 0), page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _checks() -> list[Check]:
    estate = load_estate_analysis(reference_estate())
    return [
        # Back to back: the waiting (interval) is the design, not the cost measured here.
        Check(replace(estate.templates[name], interval=0.0), system)
        for system in WAVE
        for name in estate.defaults[system]
    ]


def run(repeats: int) -> list[dict[str, Any]]:
    checks = _checks()
    server = _serve(_synthetic_counts())
    settings: dict[str, object] = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["rules.yml"],
        "scrape_configs": [
            {
                "job_name": "probe",
                "static_configs": [{"targets": [f"127.0.0.1:{server.server_address[1]}"]}],
            },
        ],
    }
    with tempfile.TemporaryDirectory(prefix="gcms-bench-analysis-") as tmp:
        try:
            running = monitoring.spawn_prometheus(Path(tmp), f"127.0.0.1:{_free_port()}", settings)
        except GcmsError as exc:
            server.shutdown()
            raise BenchError(exc.message) from exc
        try:
            return _measure(repeats, checks, prometheus.Endpoint.of(running.prometheus))
        finally:
            monitoring.stop_process(running)
            server.shutdown()
            server.server_close()


def _measure(
    repeats: int, checks: list[Check], endpoint: prometheus.Endpoint
) -> list[dict[str, Any]]:
    queries = measure.bound(checks, WAVE, wave="1", environment="lab")
    time.sleep(12)  # two rate() windows' worth of scrapes, so every query has data
    taken: list[int] = []

    def ours() -> None:
        result = measure.run(checks, queries, lambda q: prometheus.value(endpoint, q))
        if result.verdict is not measure.Verdict.SUCCESSFUL:
            raise BenchError(f"analysis measured nothing: {result.summary()}")
        taken.append(len(result.measurements))

    def peer() -> None:
        for query in queries:
            for _ in range(_count(checks, query, queries)):
                reply = requests.get(
                    f"{endpoint.url}/api/v1/query", params={"query": query}, timeout=3
                )
                reply.raise_for_status()

    times = rotate({"gcmschange": ours, "peer": peer}, repeats)
    row = Row(
        case=f"8. analysis of one wave, {len(checks)} checks (bake and intervals aside)",
        gcmschange_s=median(times["gcmschange"]),
        peer="the same PromQL queries with plain requests.get",
        peer_s=median(times["peer"]),
        runs=times,
        extra={
            "checks": len(checks),
            "measurements": taken[0] if taken else 0,
            "designed_wait_s": _designed_wait(checks),
        },
    )
    return [row.as_dict()]


def _count(checks: list[Check], query: str, queries: list[str]) -> int:
    return checks[queries.index(query)].template.count


def _designed_wait(checks: list[Check]) -> float:
    """What the estate's defaults wait per wave beyond the bake: the longest check's
    (count - 1) x interval, checks running side by side."""
    estate = load_estate_analysis(reference_estate())
    return max(
        (estate.templates[c.template.name].count - 1) * estate.templates[c.template.name].interval
        for c in checks
    )
