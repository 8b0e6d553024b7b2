"""The lab's load generator (issue 17): bounded, lab addresses only, counts what it saw."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from gcmschange.errors import InvalidInputError
from gcmschange.lab.loadgen import LoadGenerator, Target


@pytest.fixture
def flaky_server() -> Iterator[int]:
    """Answers 503 to every fifth request, 200 otherwise, on a loopback port."""
    seen = {"n": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with lock:
                seen["n"] += 1
                code = 503 if seen["n"] % 5 == 0 else 200
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_load_is_paced_counted_per_code_and_served_for_prometheus(flaky_server: int) -> None:
    target = Target("portal", "portal-1", "127.0.0.1", flaky_server, "/api/v1/status")
    generator = LoadGenerator([target], rps=50, duration=1.0, metrics_at=("127.0.0.1", 0))
    generator.start()
    generator.wait()
    assert generator._server is not None
    port = generator._server.server_address[1]
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=3).text
    generator.stop()
    codes = generator.counts.by_code()
    # Paced, never above the rate (fewer when a busy machine starves the threads).
    assert 20 <= generator.counts.sent <= 51
    assert codes["503"] == sum(codes.values()) // 5
    line = re.search(
        r'gcms_probe_requests_total\{system="portal",host="portal-1",code="503"\} (\d+)', text
    )
    assert line is not None and int(line.group(1)) == codes["503"]
    assert 'code="502"} 0' in text  # known codes exist from the start, so rates do too
    assert f'le="+Inf"}} {generator.counts.sent}' in text


@pytest.mark.parametrize(
    ("rps", "duration", "address", "why"),
    [
        (500, 10, "10.77.1.11", "at most 200"),
        (10, 7200, "10.77.1.11", "at most 3600"),
        (10, 10, "192.0.2.10", "not a lab address"),
        (10, 10, "example.org", "not a lab address"),
    ],
)
def test_load_is_bounded_and_stays_in_the_lab(
    rps: float, duration: float, address: str, why: str
) -> None:
    with pytest.raises(InvalidInputError, match=why):
        LoadGenerator([Target("portal", "p", address, 80, "/")], rps=rps, duration=duration)
