"""Monitoring of the lab: Debian's Prometheus on the controller side, an nginx exporter on
every host, and alerting rules, so canary analysis and the health gate have real metrics.

Prometheus listens on the lab bridge's own address (one per lab, so labs of several
repository copies never share a port), keeps its data under the lab's folder, and scrapes
each host's `prometheus-nginx-exporter` (from nginx's `stub_status`, which the standard
configuration serves on 127.0.0.1:8081) and the load generator's probe metrics. The exporters
run inside the hosts and end with them; Prometheus is stopped by its PID at `lab down`.

Why a probe as well as the exporter: `stub_status` counts connections and requests, not
status codes, so it cannot say how many requests failed. What clients see (status codes and
latency per host) is measured where it happens, at the load generator, and scraped from it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from gcmschange import proc
from gcmschange.analysis import prometheus
from gcmschange.errors import LabError
from gcmschange.lab import hostproc
from gcmschange.lab.layout import NETNS, LabRecord, Layout, load_record

PROMETHEUS_PORT = 9090
EXPORTER_PORT = 9113
PROBE_PORT = 9464  # the load generator's metrics
STUB_STATUS = "http://127.0.0.1:8081/stub_status"
READY_TIMEOUT = 30.0
# Prometheus servers this process started, so their exit is collected.
_children: dict[int, subprocess.Popen[bytes]] = {}

# Alerting rules of the lab; `system` and `host` come from the scrape targets' labels.
RULES = {
    "groups": [
        {
            "name": "gcms-lab",
            "rules": [
                {
                    "alert": "GcmsNginxDown",
                    "expr": 'nginx_up == 0 or up{job="nginx"} == 0',
                    "labels": {"severity": "page"},
                    "annotations": {"summary": "nginx on {{ $labels.host }} does not answer"},
                },
                {
                    "alert": "GcmsHighErrorRate",
                    "expr": (
                        'sum by (system) (rate(gcms_probe_requests_total{code=~"5..|000"}[30s]))'
                        " / sum by (system) (rate(gcms_probe_requests_total[30s])) > 0.2"
                    ),
                    "for": "15s",
                    "labels": {"severity": "page"},
                    "annotations": {"summary": "{{ $labels.system }} fails over 20% of requests"},
                },
            ],
        }
    ]
}


@dataclass(frozen=True)
class Monitoring:
    prometheus: str  # URL
    pid: int
    start: int  # start time in clock ticks, against PID reuse
    probe: str  # ADDRESS:PORT where the load generator serves its metrics


def folder(layout: Layout) -> Path:
    return layout.base / "monitoring"


def _record_file(layout: Layout) -> Path:
    return folder(layout) / "monitoring.json"


def load(root: Path) -> Monitoring | None:
    """The running lab's monitoring, if it was started."""
    try:
        data = json.loads(_record_file(Layout.of(root)).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise LabError(f"{_record_file(Layout.of(root))}: unreadable ({exc})") from exc
    return Monitoring(**data)


def gateway(record: LabRecord) -> str:
    return f"{record.network.rsplit('.', 1)[0]}.1"


def config(record: LabRecord, probe: str) -> dict[str, object]:
    """Prometheus' configuration: every lab host's exporter, the probe, the rules."""
    targets = [
        {
            "targets": [f"{h.address}:{EXPORTER_PORT}"],
            "labels": {"host": h.name, "system": h.system},
        }
        for h in record.hosts
    ]
    return {
        # One-second scrapes: a lab wave is judged in seconds, not minutes.
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
        "rule_files": ["rules.yml"],
        "scrape_configs": [
            {"job_name": "nginx", "static_configs": targets},
            {"job_name": "probe", "static_configs": [{"targets": [probe]}]},
        ],
    }


def spawn_prometheus(where: Path, listen: str, settings: dict[str, object]) -> Monitoring:
    """Start Debian's prometheus with `settings` on `listen` (ADDRESS:PORT), data in `where`,
    and wait until it is ready. Used by the lab and by tests that need a real server."""
    if shutil.which("prometheus") is None:
        raise LabError("prometheus: not installed (apt-get install prometheus)")
    where.mkdir(parents=True, exist_ok=True)
    (where / "prometheus.yml").write_text(yaml.safe_dump(settings), encoding="utf-8")
    (where / "rules.yml").write_text(yaml.safe_dump(RULES), encoding="utf-8")
    args = [
        "prometheus",
        f"--config.file={where / 'prometheus.yml'}",
        f"--storage.tsdb.path={where / 'data'}",
        f"--web.listen-address={listen}",
        "--storage.tsdb.retention.time=1d",
        "--log.level=warn",
    ]
    child = proc.spawn(args, log=where / "prometheus.log")
    _children[child.pid] = child
    url = f"http://{listen}"
    running = Monitoring(url, child.pid, hostproc.start_time(child.pid), "")
    deadline = time.monotonic() + READY_TIMEOUT
    while not prometheus.ready(prometheus.Endpoint.of(url)):
        if child.poll() is not None or time.monotonic() > deadline:
            stop_process(running)
            log = (where / "prometheus.log").read_text(errors="replace").strip().splitlines()
            raise LabError(f"prometheus on {listen} did not start: {(log or ['no output'])[-1]}")
        time.sleep(0.1)
    return running


def stop_process(running: Monitoring) -> None:
    """Stop Prometheus by its PID (checked against its start time), SIGKILL after 5 s."""
    pid = hostproc.Pid(running.pid, running.start)
    if hostproc.alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(running.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while hostproc.alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if hostproc.alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(running.pid, signal.SIGKILL)
    child = _children.pop(running.pid, None)
    if child is not None:  # started by this process: collect its exit, leave no zombie
        child.wait(timeout=5)


EXPORTER_PID = "/run/gcms-nginx-exporter.pid"


def _exporter_command() -> str:
    # Retries: the exporter may start before the standard configuration is; it waits for it.
    # The PID file (in the host's own /run) keeps a second start from making a second one.
    run = (
        "nohup prometheus-nginx-exporter"
        f" -nginx.scrape-uri={STUB_STATUS} -web.listen-address=:{EXPORTER_PORT}"
        " -nginx.retries=100000 -nginx.retry-interval=1s"
        " >/var/log/gcms/nginx-exporter.log 2>&1 </dev/null &"
    )
    return (
        f'if [ -s {EXPORTER_PID} ] && kill -0 "$(cat {EXPORTER_PID})" 2>/dev/null; then :; '
        f"else mkdir -p /var/log/gcms; {run} echo $! > {EXPORTER_PID}; fi"
    )


def start_exporters(layout: Layout, hosts: Sequence[str]) -> None:
    """Start the nginx exporter on each host over ssh, as a real host's init would."""

    def one(host: str) -> None:
        done = proc.run(
            ["ssh", "-F", str(layout.ssh_config), host, _exporter_command()],
            check=False,
            timeout=30,
        )
        if done.returncode != 0:
            raise LabError(f"host {host}: nginx exporter did not start: {done.stderr.strip()}")

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(one, hosts))


def start(root: Path) -> Monitoring:
    """Start the lab's Prometheus and exporters (idempotent: a running one is kept)."""
    layout = Layout.of(root)
    record = load_record(layout)
    if record is None:
        raise LabError(f"no lab is up for {layout.root} (run `gcmschange lab up` first)")
    if record.mode != NETNS:
        raise LabError("lab monitoring needs network-namespace mode (hosts share ports otherwise)")
    running = load(root)
    if running is not None and hostproc.alive(hostproc.Pid(running.pid, running.start)):
        return running
    start_exporters(layout, [h.name for h in record.hosts])
    address = gateway(record)
    probe = f"{address}:{PROBE_PORT}"
    made = spawn_prometheus(folder(layout), f"{address}:{PROMETHEUS_PORT}", config(record, probe))
    made = Monitoring(made.prometheus, made.pid, made.start, probe)
    _record_file(layout).write_text(json.dumps(asdict(made)), encoding="utf-8")
    return made


def stop(root: Path) -> bool:
    """Stop the lab's Prometheus (its data is kept until `lab down`); True when one ran.
    The exporters run inside the hosts and end with them."""
    return stop_layout(Layout.of(root))


def stop_layout(layout: Layout) -> bool:
    running: Monitoring | None
    try:
        data = json.loads(_record_file(layout).read_text(encoding="utf-8"))
        running = Monitoring(**data)
    except FileNotFoundError:
        return False
    except (OSError, ValueError, TypeError):
        # A damaged record still must not leave a server behind: find it by its data folder.
        running = _by_command_line(layout)
        if running is None:
            _record_file(layout).unlink(missing_ok=True)
            return False
    stop_process(running)
    _record_file(layout).unlink(missing_ok=True)
    return True


def _by_command_line(layout: Layout) -> Monitoring | None:
    marker = f"--storage.tsdb.path={folder(layout) / 'data'}".encode()
    for pid in proc.pids():
        if marker in proc.cmdline(pid).split(b"\0"):
            return Monitoring("", pid, hostproc.start_time(pid), "")
    return None
