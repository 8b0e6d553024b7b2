"""One lab host: its directories, its sshd, and the processes that make it.

A host is sshd as PID 1 of its own mount, UTS and PID namespaces (plus a network namespace
in netns mode), with per-host directories bind-mounted over the paths the estate manages.
`unshare --fork` blocks SIGTERM, so a host is stopped by signalling its sshd: when PID 1 of
a PID namespace exits, the kernel kills everything in it and its mounts go with it.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gcmschange import proc
from gcmschange.errors import LabError
from gcmschange.lab import netns

# host subdirectory -> the path it is mounted over inside the host
MOUNTS: tuple[tuple[str, str], ...] = (
    ("etc-nginx", "/etc/nginx"),
    ("log-nginx", "/var/log/nginx"),
    ("lib-nginx", "/var/lib/nginx"),
    ("etc-gcms", "/etc/gcms"),
    ("opt-gcms", "/opt/gcms"),
    ("log-gcms", "/var/log/gcms"),
    ("run", "/run"),
    # A home of its own, as a fresh host has: the controller's /root would bring its
    # dotfiles (a pyenv init in .bashrc, run by every ssh command, once hung every command
    # for 60 s on a lock a killed host left behind).
    ("home-root", "/root"),
)
SSHD = "/usr/sbin/sshd"
READY_MARK = "Server listening"

# Popen objects of the hosts this process started, so their exit is reaped, not left a zombie.
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class HostSpec:
    name: str
    dir: Path
    address: str
    netns: str | None  # None in loopback mode
    # Folders of the controller under /root that stay visible inside the host's own /root:
    # an execution node needs the controller's Python, which pyenv keeps there.
    keep_under_root: tuple[str, ...] = ()


@dataclass(frozen=True)
class Pid:
    pid: int
    start: int  # start time in clock ticks since boot: the same PID later is another process


def prepare(spec: HostSpec, authorized_keys: Path) -> None:
    """The host's directories, a fresh /run (as after a boot), and its sshd_config."""
    for sub, _target in MOUNTS:
        (spec.dir / sub).mkdir(parents=True, exist_ok=True)
    nginx = spec.dir / "etc-nginx"
    if not any(nginx.iterdir()):
        shutil.copytree("/etc/nginx", nginx, symlinks=True, dirs_exist_ok=True)
    run = spec.dir / "run"
    shutil.rmtree(run)
    (run / "sshd").mkdir(parents=True)
    listen = "0.0.0.0:22" if spec.netns else f"{spec.address}:22"
    (spec.dir / "sshd_config").write_text(_sshd_config(spec, listen, authorized_keys))
    (spec.dir / "sshd.log").write_text("")


def _sshd_config(spec: HostSpec, listen: str, authorized_keys: Path) -> str:
    # StrictModes no: the key may live in a directory others can write (a /tmp checkout).
    return f"""ListenAddress {listen}
HostKey {spec.dir / "ssh_host_ed25519_key"}
PidFile none
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile {authorized_keys}
StrictModes no
UsePAM no
UseDNS no
MaxStartups 100:30:200
MaxSessions 50
Subsystem sftp internal-sftp
"""


def host_key(spec: HostSpec) -> None:
    key = spec.dir / "ssh_host_ed25519_key"
    if not key.exists():
        spec.dir.mkdir(parents=True, exist_ok=True)
        proc.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", spec.name, "-f", str(key)])


def command(spec: HostSpec) -> list[str]:
    steps = [netns.inside_setup(spec.address)] if spec.netns else []
    for kept in spec.keep_under_root:
        # Bound into the host's /root folder before that folder covers /root, then carried
        # along by --rbind: the source is out of sight once /root is covered.
        inner = shlex.quote(str(spec.dir / "home-root" / Path(kept).relative_to("/root")))
        steps.append(f"mkdir -p {inner} && mount --bind -o ro {shlex.quote(kept)} {inner}")
    bind = "--rbind" if spec.keep_under_root else "--bind"
    steps += [f"mount {bind} {shlex.quote(str(spec.dir / s))} {t}" for s, t in MOUNTS]
    steps.append(f"hostname {shlex.quote(spec.name)}")
    config, log = (
        shlex.quote(str(spec.dir / "sshd_config")),
        shlex.quote(str(spec.dir / "sshd.log")),
    )
    steps.append(f"exec {SSHD} -D -f {config} -E {log}")
    enter = ["ip", "netns", "exec", spec.netns] if spec.netns else []
    # --kill-child: should unshare die, its child (and so the whole host) dies too.
    unshare = ["unshare", "--mount", "--propagation", "private", "--uts", "--pid", "--fork"]
    unshare += ["--kill-child", "--mount-proc", "--"]
    return [*enter, *unshare, "/bin/sh", "-c", " && ".join(steps)]


def spawn(spec: HostSpec) -> int:
    child = proc.spawn(command(spec), log=spec.dir / "unshare.out")
    _children[child.pid] = child
    return child.pid


def wait_ready(specs: dict[int, HostSpec], timeout: float) -> dict[str, str]:
    """Wait for every host's sshd to listen; return {name: why} for those that did not."""
    pending = dict(specs)
    failed: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while pending:
        for pid, spec in list(pending.items()):
            log = (spec.dir / "sshd.log").read_text(errors="replace")
            if READY_MARK in log:
                del pending[pid]
            elif not _running(pid):
                failed[spec.name] = f"exited: {_last_words(spec)}"
                del pending[pid]
        if pending and time.monotonic() > deadline:
            for spec in pending.values():
                failed[spec.name] = f"not ready within {timeout:.0f}s: {_last_words(spec)}"
            return failed
        if pending:
            time.sleep(0.02)
    return failed


def _last_words(spec: HostSpec) -> str:
    text = ""
    for name in ("sshd.log", "unshare.out"):
        path = spec.dir / name
        text += path.read_text(errors="replace") if path.exists() else ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _running(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    return proc.live_start(pid) is not None


def start_time(pid: int) -> int:
    stat = proc.stat_of(pid)
    return stat.start if stat is not None else 0


def sshd_of(unshare_pid: int) -> Pid:
    """The outer PID of the sshd that is PID 1 of the host started as `unshare_pid`."""
    children = Path(f"/proc/{unshare_pid}/task/{unshare_pid}/children").read_text().split()
    for child in children:
        if proc.comm(int(child)) == "sshd":
            return Pid(int(child), start_time(int(child)))
    return Pid(0, 0)


def alive(pid: Pid) -> bool:
    return pid.pid > 0 and proc.live_start(pid.pid) == pid.start


def stop(pids: Iterable[Pid], sig: signal.Signals = signal.SIGTERM, grace: float = 3.0) -> None:
    """Signal each host's sshd and wait until it is gone; SIGKILL what ignores `sig`.

    Anything else (an unshare whose sshd has not started yet) gets SIGKILL at once: unshare
    ignores SIGTERM, and its --kill-child takes the half-started host down with it.
    """
    targets = [p for p in pids if alive(p)]
    for target in targets:
        _kill(target, sig if proc.comm(target.pid) == "sshd" else signal.SIGKILL)
    deadline = time.monotonic() + grace
    while any(alive(p) for p in targets) and time.monotonic() < deadline:
        time.sleep(0.02)
    for target in targets:
        _kill(target, signal.SIGKILL)
    while any(alive(p) for p in targets):
        time.sleep(0.02)


def _kill(target: Pid, sig: signal.Signals) -> None:
    if alive(target):
        with contextlib.suppress(ProcessLookupError):
            os.kill(target.pid, sig)


def reap(pids: Sequence[int], timeout: float = 5.0) -> None:
    """Collect the exit of hosts this process started (their unshare), so none stays a zombie."""
    for pid in pids:
        child = _children.pop(pid, None)
        if child is not None:
            try:
                child.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


# What a host's start runs, in order: `ip netns exec` (netns mode) execs unshare, which forks
# the shell that mounts and execs sshd. A host caught halfway is any one of them.
_HOST_STAGES = ("ip", "unshare", "sh", "sshd")


def leftovers(hosts_dir: Path) -> list[Pid]:
    """Processes of this lab no record knows about, at any stage of a host's start, by
    command line."""
    marker = f"{hosts_dir}/".encode()
    return [
        Pid(pid, start_time(pid))
        for pid in proc.pids()
        if marker in proc.cmdline(pid) and proc.comm(pid) in _HOST_STAGES
    ]


def sweep(hosts_dir: Path, timeout: float = 15.0) -> None:
    """Stop every leftover of this lab until a scan finds none.

    One scan is not enough when a host is still starting: an `ip` not yet exec'd into unshare,
    or a shell whose unshare was killed before it armed --kill-child, moves on after the scan.
    """
    deadline = time.monotonic() + timeout
    while found := leftovers(hosts_dir):
        if time.monotonic() > deadline:
            raise LabError(f"lab processes still running after {timeout:.0f}s: {found}")
        stop(found, signal.SIGKILL, grace=1.0)


def pss_kb(sshd: Pid) -> int:
    """Proportional memory of every process in the host's PID namespace, in kB."""
    try:
        pidns = Path(f"/proc/{sshd.pid}/ns/pid").readlink()
    except OSError:
        return 0
    total = 0
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "ns" / "pid").readlink() == pidns:
                rollup = (entry / "smaps_rollup").read_text()
                total += sum(int(ln.split()[1]) for ln in rollup.splitlines() if ln[:4] == "Pss:")
        except OSError:
            continue
    return total
