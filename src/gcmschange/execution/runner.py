"""The user of ansible-runner for runs on this machine (`remote` streams runs to nodes).

Every run gets a fresh private data dir (ansible-runner otherwise reuses `env/cmdline` and a
"real" run can silently stay in check mode), extra vars handed over as a file whose strings
are tagged `!unsafe` (change variables are data: Ansible must never template them on the
controller), and a generated ansible.cfg so runs are reproducible and tuned: pipelining,
forks matched to the fleet, no fact gathering unless a play asks for it. After the run,
secret values are masked in every artifact ansible-runner kept.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gcmschange import proc, vault
from gcmschange.errors import CancelledError, ExternalError
from gcmschange.execution import accel, ansiblecfg
from gcmschange.masking import mask_data, mask_text
from gcmschange.paths import memory_folder
from gcmschange.yamlsafe import VaultText

LOCAL_CONTROL_DIR = "/tmp/gcmschange-cp"  # ssh ControlPath sockets of runs on this machine
PID_FILE = "playbook.pid"  # in the work dir: the ansible-playbook a run started
LEFTOVER_GRACE_S = 10.0
Progress = Callable[[str, str, str], None]  # (host, task, status)


@dataclass(frozen=True)
class RunSpec:
    playbook: Path
    inventory: Path
    work_dir: Path  # a fresh directory; becomes ansible-runner's private data dir
    extravars: Mapping[str, Any] = field(default_factory=dict)
    limit: tuple[str, ...] = ()
    check: bool = False
    diff: bool = False
    forks: int = 20
    secrets: tuple[str, ...] = ()
    accelerate: bool = False  # the Mitogen strategy, when installed (see accel.py)
    timeout_s: int = 10
    content: Path | None = None  # the sealed repository copy: its ansible.cfg, pinned paths
    # The folder of files the playbook copies from, handed over as `gcms_rendered_dir`: given
    # apart from the extra vars so a run on an execution node can ship it and name its place.
    files: Path | None = None


@dataclass(frozen=True)
class TaskChange:
    host: str
    task: str
    diff: str  # unified diff, secrets masked; may be empty for tasks without a diff


@dataclass(frozen=True)
class HostStats:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class RunResult:
    status: str  # ansible-runner's: successful, failed, timeout, canceled
    rc: int
    hosts: dict[str, HostStats]
    changes: tuple[TaskChange, ...]
    failures: dict[str, str]  # host -> first failure message
    unreachable: tuple[str, ...]
    artifacts: Path
    duration_s: float
    accelerated: bool = False  # the Mitogen strategy ran this playbook
    notice: str = ""  # one line for the operator, e.g. why the accelerator was not used

    @property
    def failed_hosts(self) -> tuple[str, ...]:
        return tuple(h for h in self.failures if h not in self.unreachable)

    @property
    def changed_hosts(self) -> tuple[str, ...]:
        return tuple(h for h, s in self.hosts.items() if s.changed)


class Unsafe(str):
    """A string Ansible must not template: dumped with the `!unsafe` tag."""


def _unsafe_representer(dumper: yaml.SafeDumper, data: Unsafe) -> yaml.Node:
    return dumper.represent_scalar("!unsafe", str(data))


def _vault_representer(dumper: yaml.SafeDumper, data: VaultText) -> yaml.Node:
    # Handed to Ansible still encrypted: it opens it in memory with the password file.
    return dumper.represent_scalar("!vault", str(data).strip() + "\n", style="|")


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(Unsafe, _unsafe_representer)
_Dumper.add_representer(VaultText, _vault_representer)


def mark_unsafe(value: Any) -> Any:
    if isinstance(value, VaultText):
        return value
    if isinstance(value, str):
        return Unsafe(value)
    if isinstance(value, Mapping):
        return {str(k): mark_unsafe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mark_unsafe(v) for v in value]
    return value


def with_files(spec: RunSpec, where: str | None) -> dict[str, Any]:
    """The run's extra vars, with `gcms_rendered_dir` naming where its files are for it."""
    extravars = dict(spec.extravars)
    if where is not None:
        extravars["gcms_rendered_dir"] = where
    return extravars


def extravars_text(extravars: Mapping[str, Any]) -> str:
    """Extra vars as Ansible reads them: texts `!unsafe`, vault values still encrypted."""
    return yaml.dump(mark_unsafe(dict(extravars)), Dumper=_Dumper, sort_keys=True)


def ansible_cfg(spec: RunSpec, content: Path | None, control_dir: str) -> str:
    defaults = {
        "forks": str(spec.forks),
        "gathering": "explicit",
        "interpreter_python": "/usr/bin/python3",
        "timeout": str(spec.timeout_s),
    }
    if spec.accelerate:
        # empty when Mitogen is missing: the native tuning
        defaults.update(dict(line.split(" = ", 1) for line in accel.config_lines()))
    # One reconnection retry: on a loaded controller a live connection can miss its
    # keepalives once; a host that is really down still fails within seconds.
    ssh = {"pipelining": "True", "reconnection_retries": "1"}
    forced_ssh = dict.fromkeys(ansiblecfg.FORCED_SSH, control_dir)
    return ansiblecfg.compose(content, {"defaults": defaults, "ssh_connection": ssh}, forced_ssh)


# Credentials of gcmschange's and of the CI job's (the vault password itself, GitLab job
# tokens, a clone URL that embeds one) that a playbook never needs: ansible-runner starts it
# with the whole environment and records that environment in its artifacts, so they are
# handed over blank. A playbook's own (VAULT_TOKEN for a hashi_vault lookup...) are its
# business and stay.
_CREDENTIAL = re.compile(
    r"GCMS_VAULT_PASSWORD|GCMS_GITLAB_TOKEN|CI_JOB_TOKEN|CI_JOB_JWT.*|CI_REGISTRY_PASSWORD"
    r"|CI_DEPLOY_PASSWORD|CI_REPOSITORY_URL|CI_SERVER_TLS_.*|ID_TOKEN_.*|GCMS_SMTP_.*"
)


def blanked_credentials(environ: Mapping[str, str]) -> dict[str, str]:
    """The controller's credentials in `environ`, set to "" for the playbook's process."""
    return {name: "" for name in environ if _CREDENTIAL.fullmatch(name)}


def _path_with_ansible() -> str:
    """PATH for the run, with the ansible-playbook that belongs to this Python first."""
    path = os.environ.get("PATH", "")
    here = Path(sys.executable).parent
    if (here / "ansible-playbook").exists():
        return f"{here}{os.pathsep}{path}"
    if not shutil.which("ansible-playbook"):
        raise ExternalError("ansible-playbook not found: install gcmschange into a venv")
    return path


def _diff_text(diff: Any, secrets: Sequence[str]) -> str:
    parts = diff if isinstance(diff, list) else [diff]
    out: list[str] = []
    for part in parts:
        if not isinstance(part, Mapping):
            continue
        if "prepared" in part:
            out.append(str(part["prepared"]))
            continue
        before, after = part.get("before", ""), part.get("after", "")
        if not isinstance(before, str) or not isinstance(after, str):
            continue
        out.extend(
            difflib.unified_diff(
                before.splitlines(keepends=True),
                after.splitlines(keepends=True),
                fromfile=str(part.get("before_header", "before")),
                tofile=str(part.get("after_header", "after")),
            )
        )
    return mask_text("".join(out), secrets)


def run_secrets(spec: RunSpec) -> tuple[str, ...]:
    """The run's secrets: the change's, and every vault value opened in this process."""
    return tuple(dict.fromkeys((*spec.secrets, *sorted(vault.revealed()))))


class Collector:
    """Turns ansible-runner's event stream into what gcmschange reports, and masks each event
    before ansible-runner writes it to the artifacts (it writes what the handler leaves)."""

    def __init__(self, spec: RunSpec, progress: Progress | None, *, local: bool = True) -> None:
        self.spec = spec
        self.secrets = run_secrets(spec)
        self.progress = progress
        self.changes: list[TaskChange] = []
        self.failures: dict[str, str] = {}
        self.unreachable: list[str] = []
        # A remote playbook's PID means nothing here: never one for `stop_leftovers` to signal.
        self.pid_written = not local
        self.stats: dict[str, Any] = {}
        self.errors: list[str] = []  # what Ansible printed as [ERROR] outside any host's result

    def __call__(self, event: dict[str, Any]) -> bool:
        if not self.pid_written and isinstance(event.get("pid"), int):
            # So that a later `resume` can stop this playbook if our process is killed -9
            # while it runs (pexpect starts it ignoring SIGHUP: it would go on alone).
            (self.spec.work_dir / PID_FILE).write_text(f"{event['pid']}\n", encoding="utf-8")
            self.pid_written = True
        if self.secrets:
            masked = mask_data(event, self.secrets)
            event.clear()
            event.update(masked)
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        if kind == "playbook_on_stats" and isinstance(data, dict):
            self.stats = data  # what the streamed run reports in place of `Runner.stats`
        host = str(data.get("host", ""))
        task = str(data.get("task", ""))
        res = data.get("res") or {}
        if not kind.startswith("runner_") and len(self.errors) < 5:
            # A playbook that cannot load (a module or role not found, a syntax error) says
            # why only here: in a verbose line, with no host result at all.
            self.errors += _error_lines(str(event.get("stdout") or ""), self.secrets)
        changed = isinstance(res, dict) and _changed(res, str(event.get("stdout") or ""))
        if kind in {"runner_on_ok", "runner_item_on_ok"} and isinstance(res, dict):
            # A loop's summary event repeats its items, which were reported one by one.
            if changed and "results" not in res:
                self._changed(host, task, res)
        elif kind == "runner_on_failed" and not data.get("ignore_errors"):
            self.failures.setdefault(
                host, mask_text(f"{task}: {failure_message(res)}", self.secrets)
            )
        elif kind == "runner_on_unreachable":
            if host not in self.unreachable:
                self.unreachable.append(host)
            self.failures.setdefault(
                host, mask_text(f"unreachable: {failure_message(res)}", self.secrets)
            )
        if self.progress and host and kind.startswith("runner_on_"):
            shown = kind.removeprefix("runner_on_")
            if shown == "ok" and changed:
                shown = "changed"  # as ansible-playbook itself says it
            self.progress(host, task, shown)
        return True

    def failures_of(self, status: str, hosts: Sequence[str]) -> dict[str, str]:
        """The run's failures by host; a run that failed with no host's result failed on
        every host it was given (it never got to them), with Ansible's own reason."""
        if status == "successful" or self.failures or self.unreachable or not hosts:
            return dict(self.failures)
        why = " ".join(self.errors[:2]) or f"ansible-playbook ended {status} before any task ran"
        name = self.spec.playbook.name
        return dict.fromkeys(hosts, mask_text(f"playbook {name}: {why}"[:600], self.secrets))

    def _changed(self, host: str, task: str, res: dict[str, Any]) -> None:
        diff = _diff_text(res.get("diff", []), self.secrets) if self.spec.diff else ""
        if "censored" in res:
            diff = NO_LOG_DIFF
        self.changes.append(TaskChange(host, task, diff))


NO_LOG_DIFF = "(output hidden: no_log)\n"


def _changed(res: dict[str, Any], stdout: str) -> bool:
    """Whether a task changed its host. A `no_log` result is censored down to one key, so
    the line Ansible printed for it is what still says "changed"."""
    if "censored" in res:
        return stdout.lstrip().startswith("changed")
    return bool(res.get("changed"))


_ERROR_LINE = re.compile(r"^(\[ERROR\]:|ERROR!)\s*")


def _error_lines(text: str, secrets: Sequence[str]) -> list[str]:
    return [
        mask_text(_ERROR_LINE.sub("", line.strip()), secrets)
        for line in text.splitlines()
        if _ERROR_LINE.match(line.strip())
    ]


# Messages that say a task failed without saying why: the why is in its output.
_GENERIC = ("All items completed", "Unknown error", "non-zero return code", "MODULE FAILURE")
_DETAIL_KEYS = ("stderr", "module_stderr", "stdout", "module_stdout", "exception")
_NO_DETAIL = frozenset({"(traceback unavailable)"})  # what ansible-core 2.19 says of none


def _last_lines(text: str, limit: int = 300) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(lines[-3:])[-limit:]


def failure_message(res: Any) -> str:
    """Why a task failed or a host was unreachable, in one line, from its result."""
    if not isinstance(res, Mapping):
        return _last_lines(str(res)) or "failed"
    items = res.get("results")
    if isinstance(items, list):  # a loop: the first item that failed says why
        for item in items:
            if isinstance(item, Mapping) and (item.get("failed") or item.get("unreachable")):
                return failure_message(item)
    msg = _last_lines(str(res.get("msg") or ""))
    detail = next(
        (
            _last_lines(str(res[k]))
            for k in _DETAIL_KEYS
            if res.get(k) and str(res[k]).strip() not in _NO_DETAIL
        ),
        "",
    )
    if "rc" in res and res.get("cmd"):  # a command's: which one, and what it returned
        cmd = res["cmd"]
        shown = " ".join(map(str, cmd)) if isinstance(cmd, list) else str(cmd)
        detail = "; ".join(p for p in (f"rc={res['rc']} cmd: {shown[:200]}", detail) if p)
    if msg and detail and (not msg.strip(". ") or any(g in msg for g in _GENERIC)):
        return f"{msg}: {detail}"
    return msg or detail or "failed"


def drop_environment(artifacts: Path) -> None:
    """ansible-runner records the whole process environment (CI tokens, passwords) beside the
    command; only the command and its folder are kept."""
    for command in artifacts.glob("*/command"):
        try:
            data = json.loads(command.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            command.unlink(missing_ok=True)
            continue
        kept = {k: data[k] for k in ("command", "cwd") if isinstance(data, dict) and k in data}
        command.write_text(json.dumps(kept), encoding="utf-8")


def mask_tree(root: Path, secrets: Sequence[str]) -> None:
    if not any(secrets):
        return
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            masked = mask_text(text, secrets)
            if masked != text:
                path.write_text(masked, encoding="utf-8")


@contextmanager
def own_signals() -> Iterator[Callable[[], int | None]]:
    """Turn SIGINT/SIGTERM during a run into a cancel of that run, then give them back.

    ansible-runner's own handlers only set an anonymous flag and never restore ours, so after
    the first playbook Ctrl-C would be ignored (and a SIGTERM would never let the caller's
    `finally` blocks run). Ours remember which signal came, so the run can end as interrupted.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return

    def note(signum: int, frame: object) -> None:
        received.append(signum)

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in saved:
        signal.signal(sig, note)
    try:
        yield lambda: received[0] if received else None
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _playbook_alive(pid: int, work_dir: Path) -> bool:
    """Whether `pid` is still the ansible-playbook of `work_dir` (not a reused PID)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"ANSIBLE_CONFIG={work_dir / 'ansible.cfg'}".encode() in environ


def _read_pid(work_dir: Path) -> int | None:
    try:
        return int((work_dir / PID_FILE).read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None


def stop_leftovers(folder: Path, grace_s: float = LEFTOVER_GRACE_S) -> tuple[int, ...]:
    """Stop the playbooks that runs under `folder` started and that outlived their run (the
    orchestrator was killed -9). Returns the PIDs stopped. Two playbooks on the same hosts
    must never overlap."""
    stopped: list[int] = []
    for pid_file in sorted(folder.rglob(PID_FILE)):
        pid = _read_pid(pid_file.parent)
        if pid is None or not _playbook_alive(pid, pid_file.parent):
            continue
        # Its workers and the modules they run, taken before it goes: once it is gone they
        # are orphans no one would wait for, and a module still running on a host is the
        # overlap this function exists to prevent.
        tree = proc.descendants(pid)
        start = proc.live_start(pid)
        # The playbook itself is waited for too: "stopped" means gone, not signalled.
        tree += [(pid, start)] if start is not None else []
        with suppress(ProcessLookupError, PermissionError):
            # SIGINT is ansible-playbook's own "user interrupted": it terminates its workers,
            # which run in sessions of their own and would outlive a kill of its group.
            os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + grace_s
        while _playbook_alive(pid, pid_file.parent) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _playbook_alive(pid, pid_file.parent):
            _signal_group(pid, signal.SIGKILL)
        _end_all(tree, grace_s)
        stopped.append(pid)
    return tuple(stopped)


def _end_all(tree: list[tuple[int, int]], grace_s: float) -> None:
    """Wait up to `grace_s` for these processes to exit; SIGKILL the ones still there."""

    def left() -> list[int]:
        return [p for p, start in tree if proc.live_start(p) == start]

    deadline = time.monotonic() + grace_s
    while left() and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in left():
        with suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + grace_s
    while left() and time.monotonic() < deadline:
        time.sleep(0.05)


class _Canceller:
    """ansible-runner's cancel callback: after a signal, first ask the playbook to stop as
    Ctrl-C in a terminal would (SIGINT to it alone: its workers end too); only if it is still
    there after `grace_s`, let ansible-runner SIGKILL its process group."""

    def __init__(self, work_dir: Path, signalled: Callable[[], int | None], grace_s: float):
        self.work_dir = work_dir
        self.signalled = signalled
        self.grace_s = grace_s
        self.asked_at: float | None = None

    def __call__(self) -> bool:
        if self.signalled() is None:
            return False
        if self.asked_at is None:
            self.asked_at = time.monotonic()
            pid = _read_pid(self.work_dir)
            if pid is None or not _playbook_alive(pid, self.work_dir):
                return True
            with suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGINT)
            return False
        return time.monotonic() - self.asked_at > self.grace_s


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(os.getpgid(pid), sig)


Signalled = Callable[[], int | None]  # the signal that asked a run to stop, if one did


def run_playbook(
    spec: RunSpec, progress: Progress | None = None, signalled: Signalled | None = None
) -> RunResult:
    """Run one playbook through ansible-runner and return what happened, secrets masked.

    `signalled`: the caller's own record of SIGINT/SIGTERM, when it runs this in a thread
    (only the main thread can take the signals); by default the run takes them itself."""
    with vault.password_file(spec.content) as password_file, _artifact_folder(spec) as folder:
        if signalled is not None:
            return _run(spec, progress, password_file, folder, signalled)
        with own_signals() as own:
            return _run(spec, progress, password_file, folder, own)


@contextmanager
def _artifact_folder(spec: RunSpec) -> Iterator[Path]:
    """Where ansible-runner writes the run's artifacts. With secrets in play, memory-backed
    storage outside the run folder: its callback writes each event whole (`*-partial.json`)
    before the event handler can mask it, and ends its output files as it pleases. What is
    kept is masked there first, then moved into the run folder, whatever way the run ended."""
    final = spec.work_dir / "artifacts"
    secrets = run_secrets(spec)
    if not secrets:
        yield final
        return
    with memory_folder("gcms-artifacts-") as folder:
        try:
            yield folder
        finally:
            for partial in folder.rglob("*-partial.json"):
                partial.unlink(missing_ok=True)
            drop_environment(folder)
            mask_tree(folder, secrets)
            final.mkdir(parents=True, exist_ok=True)
            for entry in folder.iterdir():
                shutil.move(str(entry), final / entry.name)


def _run(
    spec: RunSpec,
    progress: Progress | None,
    password_file: Path | None,
    artifacts: Path,
    signalled: Signalled,
) -> RunResult:
    import ansible_runner  # the only import of it in the package

    if spec.work_dir.exists() and any(spec.work_dir.iterdir()):
        raise ExternalError(f"{spec.work_dir}: runner work dir must be fresh")
    spec.work_dir.mkdir(parents=True, exist_ok=True)
    Path(LOCAL_CONTROL_DIR).mkdir(mode=0o700, exist_ok=True)
    cfg = spec.work_dir / "ansible.cfg"
    cfg.write_text(ansible_cfg(spec, spec.content, LOCAL_CONTROL_DIR), encoding="utf-8")
    extravars_file = spec.work_dir / "extravars.yml"
    files = str(spec.files.resolve()) if spec.files is not None else None
    extravars_file.write_text(extravars_text(with_files(spec, files)), encoding="utf-8")
    cmdline = [f"-e @{extravars_file}"]
    if password_file is not None:
        cmdline.append(f"--vault-password-file {password_file}")
    if spec.check:
        cmdline.append("--check")
    if spec.diff:
        cmdline.append("--diff")
    accelerated = spec.accelerate and accel.available()
    collector = Collector(spec, progress)
    started = time.monotonic()
    result = ansible_runner.run(
        private_data_dir=str(spec.work_dir),
        artifact_dir=str(artifacts),
        playbook=str(spec.playbook.resolve()),
        inventory=str(spec.inventory.resolve()),
        limit=",".join(spec.limit) if spec.limit else None,
        cmdline=" ".join(cmdline),
        envvars={
            **blanked_credentials(os.environ),
            "ANSIBLE_CONFIG": str(cfg),
            "PATH": _path_with_ansible(),
            # ansible-runner turns host key checking off unless told otherwise; the lab and
            # every real estate check keys against known_hosts.
            "ANSIBLE_HOST_KEY_CHECKING": "True",
        },
        forks=spec.forks,
        quiet=True,
        suppress_env_files=True,
        event_handler=collector,
        cancel_callback=_Canceller(spec.work_dir, signalled, LEFTOVER_GRACE_S),
        timeout=3600,
    )
    (spec.work_dir / PID_FILE).unlink(missing_ok=True)
    duration = time.monotonic() - started
    stats = result.stats or {}
    hosts = host_stats(stats, collector)
    extravars_file.unlink(missing_ok=True)
    drop_environment(spec.work_dir / "artifacts")
    mask_tree(spec.work_dir, run_secrets(spec))
    signum = signalled()
    if signum is not None:
        # ansible-runner has already killed the playbook's process group.
        raise CancelledError(
            f"{signal.Signals(signum).name} received: the playbook was stopped after "
            f"{duration:.0f} s; what it did so far is recorded"
        )
    return RunResult(
        status=str(result.status),
        rc=int(result.rc if result.rc is not None else -1),
        hosts=hosts,
        changes=tuple(collector.changes),
        failures=collector.failures_of(str(result.status), spec.limit),
        unreachable=tuple(sorted(set(collector.unreachable) | set(stats.get("dark", {})))),
        artifacts=spec.work_dir / "artifacts",
        duration_s=duration,
        accelerated=accelerated,
        notice=accel.MISSING if spec.accelerate and not accelerated else "",
    )


def host_stats(stats: Mapping[str, Any], collector: Collector) -> dict[str, HostStats]:
    names = set(collector.failures) | set(collector.unreachable)
    for key in ("ok", "changed", "failures", "dark", "skipped", "processed"):
        names |= set(stats.get(key, {}) or {})
    return {
        h: HostStats(
            ok=int(stats.get("ok", {}).get(h, 0)),
            changed=int(stats.get("changed", {}).get(h, 0)),
            failed=int(stats.get("failures", {}).get(h, 0)),
            unreachable=int(stats.get("dark", {}).get(h, 0)) or int(h in collector.unreachable),
            skipped=int(stats.get("skipped", {}).get(h, 0)),
        )
        for h in sorted(names)
    }
