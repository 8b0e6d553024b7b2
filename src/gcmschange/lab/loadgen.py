"""A bounded load generator for the lab: real requests through the portal to the case API
(and to the case API directly), with what each host answered exposed for Prometheus.

Bounded on purpose: at most `MAX_RPS` requests per second in all, at most `MAX_DURATION`
seconds, and only to addresses of the running lab's hosts. Requests are paced by one
scheduler thread and sent by a few worker threads, so a slow host delays its own requests,
not the pace. Each answer is counted by system, host and status code ("000" when there was
no answer), with its latency in a histogram: `gcms_probe_requests_total` and
`gcms_probe_request_duration_seconds`, served on /metrics for the lab's Prometheus.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from gcmschange.errors import InvalidInputError, LabError
from gcmschange.lab.layout import Layout, load_record

MAX_RPS = 200.0
MAX_DURATION = 3600.0
WORKERS = 8
TIMEOUT = 2.0
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Codes counted from the start, so a rate over them exists before the first one happens.
KNOWN_CODES = ("200", "404", "500", "502", "503", "504", "000")
# What each system is asked: the portal's API path goes through it to the case API.
PATHS = {"portal": (80, "/api/v1/status"), "case_api": (8080, "/api/v1/status")}


@dataclass(frozen=True)
class Target:
    system: str
    host: str
    address: str
    port: int
    path: str


@dataclass
class Counts:
    """What the generator has seen (mutable, guarded by `lock`)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    codes: dict[tuple[str, str, str], int] = field(default_factory=dict)
    buckets: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    seconds: dict[tuple[str, str], float] = field(default_factory=dict)
    sent: int = 0

    def prime(self, targets: Sequence[Target]) -> None:
        for t in targets:
            for code in KNOWN_CODES:
                self.codes[(t.system, t.host, code)] = 0
            self.buckets[(t.system, t.host)] = [0] * (len(BUCKETS) + 1)
            self.seconds[(t.system, t.host)] = 0.0

    def add(self, target: Target, code: str, took: float) -> None:
        key = (target.system, target.host)
        with self.lock:
            self.sent += 1
            self.codes[(*key, code)] = self.codes.get((*key, code), 0) + 1
            slot = next((i for i, b in enumerate(BUCKETS) if took <= b), len(BUCKETS))
            self.buckets[key][slot] += 1
            self.seconds[key] += took

    def exposition(self) -> str:
        """The Prometheus text format of everything counted so far."""
        with self.lock:
            lines = ["# TYPE gcms_probe_requests_total counter"]
            for (system, host, code), n in sorted(self.codes.items()):
                labels = f'system="{system}",host="{host}",code="{code}"'
                lines.append(f"gcms_probe_requests_total{{{labels}}} {n}")
            lines.append("# TYPE gcms_probe_request_duration_seconds histogram")
            for (system, host), counts in sorted(self.buckets.items()):
                labels = f'system="{system}",host="{host}"'
                total = 0
                for bound, n in zip((*BUCKETS, "+Inf"), counts, strict=True):
                    total += n
                    bucket = f'{labels},le="{bound}"'
                    lines.append(f"gcms_probe_request_duration_seconds_bucket{{{bucket}}} {total}")
                lines.append(f"gcms_probe_request_duration_seconds_count{{{labels}}} {total}")
                lines.append(
                    f"gcms_probe_request_duration_seconds_sum{{{labels}}} "
                    f"{self.seconds[(system, host)]:.6f}"
                )
        return "\n".join(lines) + "\n"

    def by_code(self) -> dict[str, int]:
        with self.lock:
            out: dict[str, int] = {}
            for (_s, _h, code), n in self.codes.items():
                if n:
                    out[code] = out.get(code, 0) + n
            return out


def lab_targets(root: Path, systems: Sequence[str] = ("portal", "case_api")) -> tuple[Target, ...]:
    """Every host of `systems` in the running lab, with the path each system is asked."""
    record = load_record(Layout.of(root))
    if record is None:
        raise LabError(f"no lab is up for {root} (run `gcmschange lab up` first)")
    return tuple(
        Target(h.system, h.name, h.address, *PATHS[h.system])
        for h in record.hosts
        if h.system in systems and h.system in PATHS
    )


# Loopback, and the 10.77.0.0/16 range the lab's bridges take (gcmschange.lab.registry): the
# load generator sends traffic nowhere else.
LAB_NETWORKS = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("10.77.0.0/16"))


def _in_lab(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in LAB_NETWORKS)


def _ask(target: Target) -> str:
    connection = http.client.HTTPConnection(target.address, target.port, timeout=TIMEOUT)
    try:
        connection.request("GET", target.path, headers={"User-Agent": "gcmschange-loadgen"})
        reply = connection.getresponse()
        reply.read()
        return str(reply.status)
    except (OSError, http.client.HTTPException):
        return "000"
    finally:
        connection.close()


class LoadGenerator:
    """Start with `start()`, stop with `stop()` (or let `duration` run out)."""

    def __init__(
        self,
        targets: Sequence[Target],
        *,
        rps: float,
        duration: float,
        metrics_at: tuple[str, int] | None = None,
    ) -> None:
        if not targets:
            raise InvalidInputError("load: no target hosts (is the lab up with portal/case_api?)")
        for target in targets:
            if not _in_lab(target.address):
                raise InvalidInputError(
                    f"load: {target.host} at {target.address} is not a lab address "
                    "(loopback or the lab's network only)"
                )
        if not 0 < rps <= MAX_RPS:
            raise InvalidInputError(f"load: --rps {rps:g} must be above 0 and at most {MAX_RPS:g}")
        if not 0 < duration <= MAX_DURATION:
            raise InvalidInputError(
                f"load: --duration {duration:g} must be above 0 and at most {MAX_DURATION:g} s"
            )
        self.targets = tuple(targets)
        self.rps = rps
        self.duration = duration
        self.counts = Counts()
        self.counts.prime(self.targets)
        self._stop = threading.Event()
        self._work: queue.Queue[Target | None] = queue.Queue(maxsize=int(rps * 2) + WORKERS)
        self._threads: list[threading.Thread] = []
        self._server: ThreadingHTTPServer | None = None
        self._metrics_at = metrics_at

    def start(self) -> None:
        if self._metrics_at is not None:
            self._server = metrics_server(self._metrics_at, self.counts.exposition)
            self._spawn(self._server.serve_forever)
        for _ in range(WORKERS):
            self._spawn(self._worker)
        self._spawn(self._pace)

    def _spawn(self, body: Callable[[], object]) -> None:
        thread = threading.Thread(target=body, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _pace(self) -> None:
        began = time.monotonic()
        sent = 0
        while not self._stop.is_set():
            due = began + sent / self.rps
            if due - began >= self.duration:
                break
            self._stop.wait(max(0.0, due - time.monotonic()))
            # A full queue means the hosts are slower than the pace: drop, don't pile up.
            with contextlib.suppress(queue.Full):
                self._work.put_nowait(self.targets[sent % len(self.targets)])
            sent += 1
        self._stop.set()

    def _worker(self) -> None:
        while True:
            try:
                target = self._work.get(timeout=0.2)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            try:
                if target is None:
                    return
                began = time.monotonic()
                code = _ask(target)
                self.counts.add(target, code, time.monotonic() - began)
            finally:
                self._work.task_done()

    def wait(self) -> None:
        """Until `duration` has run out (or `stop` was called) and every request sent has its
        answer counted."""
        self._stop.wait()
        self._work.join()

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=TIMEOUT + 1)


def metrics_server(at: tuple[str, int], page: Callable[[], str]) -> ThreadingHTTPServer:
    """An HTTP server (not yet serving) answering `/metrics` with `page()`, in Prometheus'
    text format: the load generator's counts, and any page a test or benchmark scrapes."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = page().encode() if self.path == "/metrics" else b"not found\n"
            self.send_response(200 if self.path == "/metrics" else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return  # every scrape would print a line on the terminal running the load

    try:
        return ThreadingHTTPServer(at, Handler)
    except OSError as exc:
        raise LabError(f"load: cannot serve metrics on {at[0]}:{at[1]}: {exc.strerror}") from exc
