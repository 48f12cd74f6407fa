"""How fast the suite brings up mTLS sandboxes, against what Podman alone needs.

One run prints, on this machine:

- the floor: ``podman run`` of the sandbox image until its first output line,
  through the suite's own Podman service and containers.conf, on its network;
- the time to ready of one sandbox: from the CreateSandbox request to the
  supervisor's accepted mTLS session, as the gateway recorded it (the
  ``SupervisorConnected`` condition) and as the suite's polling saw it; floor
  and sandbox runs take turns, so that both meet the same load;
- where a supervisor's time goes: imports, the mTLS channel and the first
  answer to a hello, inside a sandbox-like container and on the host;
- full mTLS handshakes per second against the gateway on 127.0.0.1;
- the time to ready of 1, 2, 4, 8 and 16 sandboxes started at once, with the
  CPU seconds each sandbox cost, by process;
- the wall time of the whole feature (behave in a subprocess, reports to a
  temporary directory) and of a cold build of the sandbox image under a
  temporary tag and label, so the cached image stays as it is.

The targets are printed as figures with PASS or MISS; nothing here fails a
build. Everything the run creates is removed on exit, Ctrl-C included.

Usage: ``python benchmarks/bench.py [--skip-cold] [--runs N] [--json PATH]``;
``--help`` lists the rest.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import re
import selectors
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import tomli_w

from openshell_acceptance import AcceptanceError, Deployment, Sandbox, SuiteRun
from openshell_acceptance._wait import poll
from openshell_acceptance.image import Recipe, build_sandbox_image
from openshell_acceptance.podman import OWNER_LABEL, RUN_LABEL, owner_id
from openshell_acceptance.probes import EMPTY_SETTINGS_FRAME, HTTP2_PREFACE

REPO = Path(__file__).resolve().parents[1]
FEATURE = REPO / "features" / "podman_mtls.feature"
LEVELS = (1, 2, 4, 8, 16)
SUPERVISOR_CONDITION = "SupervisorConnected"
COLD_NAME = "localhost/openshell-acceptance-bench-cold"
COLD_LABEL = "openshell.acceptance.bench-cold"

READY_RATIO_TARGET = 1.5
FEATURE_SECONDS_TARGET = 60.0
SCALE_RATIO_TARGET = 4.0

FLOOR_TIMEOUT = 60.0
READY_TIMEOUT = 120.0
FEATURE_TIMEOUT = 900.0
BARRIER_TIMEOUT = 60.0
DRAIN_TIMEOUT = 120.0
PROBE_TIMEOUT = 60.0


# Figures


@dataclass(frozen=True)
class Stats:
    """Minimum, median and maximum of a set of seconds."""

    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float | None]) -> Stats:
        return cls(tuple(v for v in values if v is not None))

    @property
    def min(self) -> float:
        return min(self.values) if self.values else float("nan")

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def max(self) -> float:
        return max(self.values) if self.values else float("nan")

    def line(self) -> str:
        if not self.values:
            return "n/a"
        return (
            f"min {self.min:.3f}s  median {self.median:.3f}s  max {self.max:.3f}s"
            f"  (n={len(self.values)})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "min": self.min,
            "median": self.median,
            "max": self.max,
            "n": len(self.values),
            "values": list(self.values),
        }


@dataclass(frozen=True)
class ReadySample:
    """One sandbox, in seconds from its CreateSandbox request."""

    create_returned: float
    gateway: float | None
    polled: float
    container_started: float | None


@dataclass
class Report:
    """What one bench run measured, for printing and for ``--json``."""

    facts: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    targets: list[dict[str, Any]] = field(default_factory=list)

    def target(
        self, name: str, measured: float, limit: float, shown: str, *, strict: bool
    ) -> None:
        within = measured < limit if strict else measured <= limit
        verdict = "PASS" if within else "MISS"
        self.targets.append(
            {"target": name, "measured": measured, "limit": limit, "verdict": verdict}
        )
        say(f"  {verdict}  {name}: {shown}")


def say(line: str = "") -> None:
    print(line, flush=True)


def note(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# Machine facts


def machine_facts(run: SuiteRun) -> dict[str, Any]:
    assert run.podman is not None
    env = {**os.environ, **run.podman.env}
    remote = _output(
        ["podman", "info", "--format", "{{.Host.ServiceIsRemote}}"], env=env
    )
    version = run.podman.client().version()
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "podman_client": _output(["podman", "--version"]).removeprefix(
            "podman version "
        ),
        "podman_service": str(version.get("Version", "?")),
        "podman_cli_remote": remote == "true",
        "podman_adaptations": list(run.podman.adaptations),
        "load_average_start": list(os.getloadavg()),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _output(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    result = subprocess.run(
        list(argv),
        env=dict(env) if env is not None else None,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result.stdout.strip()


# The floor: podman run until the first line


def time_to_first_line(
    argv: Sequence[str], env: Mapping[str, str], timeout: float = FLOOR_TIMEOUT
) -> tuple[float, str]:
    """Seconds from starting ``argv`` to its first line on stdout, and the line."""
    started = time.monotonic()
    process = subprocess.Popen(
        list(argv),
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        elapsed, line = _read_line(process, started, timeout)
        _, err = process.communicate(timeout=timeout)
    except BaseException:
        _end(process)
        raise
    if process.returncode != 0 or not line:
        last = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise RuntimeError(
            f"{argv[0]} exited with code {process.returncode}: {last[0]}"
        )
    return elapsed, line


def _read_line(
    process: subprocess.Popen[bytes], started: float, timeout: float
) -> tuple[float, str]:
    assert process.stdout is not None
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while b"\n" not in buffer:
            remaining = started + timeout - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no output line within {timeout:.0f}s")
            if not selector.select(remaining):
                continue
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                break
            buffer += chunk
    elapsed = time.monotonic() - started
    return elapsed, buffer.split(b"\n", 1)[0].decode(errors="replace")


def _end(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=grace)


def floor_argv(run: SuiteRun, command: Sequence[str]) -> list[str]:
    """``podman run`` of the sandbox image on the run's network, labelled."""
    assert run.target is not None and run.target.sandbox_image is not None
    argv = ["podman", "run", "--rm", "--network", run.network_name]
    argv += ["--label", f"{RUN_LABEL}={run.id}"]
    argv += ["--label", f"{OWNER_LABEL}={owner_id()}"]
    return [*argv, run.target.sandbox_image, *command]


def podman_env(run: SuiteRun) -> dict[str, str]:
    """The environment that points the podman CLI at the run's own service."""
    assert run.podman is not None
    return {**os.environ, **run.podman.env}


# Time to ready


def _condition_time(ref: Any) -> float | None:
    for condition in ref.status.conditions:
        connected = (
            condition.type == SUPERVISOR_CONDITION and condition.status == "True"
        )
        if connected and condition.transition_time_ms:
            return condition.transition_time_ms / 1000.0
    return None


_PODMAN_TIME = re.compile(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:?\d\d)?$")


def podman_timestamp(text: str) -> float | None:
    """Seconds since the epoch of an RFC 3339 time with up to nanoseconds."""
    match = _PODMAN_TIME.match(text or "")
    if match is None:
        return None
    base, fraction, zone = match.groups()
    micro = (fraction or ".0")[1:7].ljust(6, "0")
    zone = "+00:00" if zone in (None, "Z") else zone
    try:
        return dt.datetime.fromisoformat(f"{base}.{micro}{zone}").timestamp()
    except ValueError:
        return None


def start_and_wait(
    deployment: Deployment, *, inspect: bool = True
) -> tuple[Sandbox, ReadySample]:
    """Create one sandbox and wait for it the way the suite's steps do."""
    wall = time.time()
    started = time.monotonic()
    sandbox = deployment.start_sandbox()
    created = time.monotonic() - started
    ref = deployment.wait_ready(sandbox, timeout=READY_TIMEOUT)
    polled = time.monotonic() - started
    connected = _condition_time(ref)
    return sandbox, ReadySample(
        create_returned=created,
        gateway=None if connected is None else connected - wall,
        polled=polled,
        container_started=(
            _started_offset(deployment, sandbox, wall) if inspect else None
        ),
    )


def _started_offset(
    deployment: Deployment, sandbox: Sandbox, wall: float
) -> float | None:
    container = deployment.container(sandbox)
    if container is None:
        return None
    moment = podman_timestamp(container.get("State", {}).get("StartedAt", ""))
    return None if moment is None else moment - wall


def delete_sandboxes(deployment: Deployment, sandboxes: Sequence[Sandbox]) -> None:
    """Delete through the gateway, then wait until no container is left."""
    deployment.delete_sandboxes(sandboxes)
    gone = poll(
        lambda: True if not deployment.managed_containers() else None,
        timeout=DRAIN_TIMEOUT,
    )
    if gone is None:
        raise RuntimeError(f"sandbox containers still exist after {DRAIN_TIMEOUT}s")


def api_create_start(run: SuiteRun) -> float:
    """Seconds for Podman's API to create and start a bare container of the image
    on the run's network: what the driver's CreateSandbox does at the least."""
    assert run.podman is not None and run.target is not None
    containers = run.podman.client().containers
    started = time.monotonic()
    container = containers.create(
        image=run.target.sandbox_image,
        command=["/usr/bin/python3", "-c", "print(1)"],
        network_mode="bridge",
        networks={run.network_name: {}},
        labels={RUN_LABEL: run.id, OWNER_LABEL: owner_id()},
    )
    try:
        container.start()
        return time.monotonic() - started
    finally:
        container.remove(force=True)


def measure_floor_and_ready(
    run: SuiteRun, deployment: Deployment, runs: int
) -> tuple[dict[str, list[float]], list[ReadySample]]:
    """The floors and single sandboxes, taken in turns so that both see the same
    load; each kind has one untimed warm-up first."""
    env = podman_env(run)
    floors: dict[str, Callable[[], float]] = {
        "python": _timed_run(
            floor_argv(run, ["/usr/bin/python3", "-c", "print(1)"]), env
        ),
        "echo": _timed_run(floor_argv(run, ["echo", "1"]), env),
        "api": lambda: api_create_start(run),
    }
    times: dict[str, list[float]] = {name: [] for name in floors}
    samples = []
    for measure in floors.values():
        measure()
    warm, _ = start_and_wait(deployment)
    delete_sandboxes(deployment, [warm])
    for _ in range(runs):
        for name, measure in floors.items():
            times[name].append(measure())
        sandbox, sample = start_and_wait(deployment)
        samples.append(sample)
        delete_sandboxes(deployment, [sandbox])
    return times, samples


def _timed_run(argv: Sequence[str], env: Mapping[str, str]) -> Callable[[], float]:
    return lambda: time_to_first_line(argv, env)[0]


@dataclass(frozen=True)
class Level:
    """Sandboxes started at once, and the CPU seconds they cost per sandbox."""

    count: int
    samples: tuple[ReadySample, ...]
    cpu: dict[str, float]
    wall: float
    failures: tuple[str, ...] = ()


def measure_level(deployment: Deployment, count: int, podman_pid: int | None) -> Level:
    """``count`` sandboxes requested at the same moment, from as many threads.

    A sandbox that never gets ready is counted with its cause, not raised:
    the figures of the others still stand.
    """
    assert deployment.gateway is not None
    barrier = threading.Barrier(count)
    known = len(deployment.sandboxes)

    def one() -> tuple[Sandbox, ReadySample]:
        barrier.wait(BARRIER_TIMEOUT)
        return start_and_wait(deployment, inspect=False)

    before = cpu_snapshot(deployment.gateway.pid, podman_pid)
    started = time.monotonic()
    pool = futures.ThreadPoolExecutor(max_workers=count, thread_name_prefix="level")
    results: list[tuple[Sandbox, ReadySample]] = []
    failures: list[str] = []
    try:
        jobs = [pool.submit(one) for _ in range(count)]
        for job in jobs:
            try:
                results.append(job.result(timeout=READY_TIMEOUT + BARRIER_TIMEOUT))
            except (AcceptanceError, grpc.RpcError) as exc:
                failures.append(_one_line(exc))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    wall = time.monotonic() - started
    after = cpu_snapshot(deployment.gateway.pid, podman_pid)
    created = deployment.sandboxes[known:]
    cpu = {key: (after[key] - before[key]) / count for key in before}
    cpu["supervisor"] = sum(supervisor_cpu(deployment, s) for s in created) / count
    cpu["rest"] = cpu["system"] - sum(
        cpu[key] for key in ("gateway", "podman", "bench", "supervisor")
    )
    delete_sandboxes(deployment, created)
    samples = tuple(sample for _, sample in results)
    return Level(count, samples, cpu, wall, tuple(failures))


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, grpc.RpcError):
        return f"{exc.code().name}: {exc.details()}"  # type: ignore[attr-defined]
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def cpu_snapshot(gateway_pid: int | None, podman_pid: int | None) -> dict[str, float]:
    """Busy CPU seconds so far: the whole machine, the gateway, Podman, this bench."""
    return {
        "system": _system_busy(),
        "gateway": _process_cpu(gateway_pid) or 0.0,
        "podman": _process_cpu(podman_pid) or 0.0,
        "bench": time.process_time(),
    }


def supervisor_cpu(deployment: Deployment, sandbox: Sandbox) -> float:
    """CPU seconds the sandbox's supervisor process has used, from its host PID."""
    container = deployment.container(sandbox)
    pid = (container or {}).get("State", {}).get("Pid")
    used = _process_cpu(pid) if pid else None
    return used if used is not None else 0.0


def _system_busy() -> float:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(value) for value in fields[:8]]
    idle = ticks[3] + ticks[4]
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")


# Handshakes


@dataclass(frozen=True)
class Handshakes:
    count: int
    seconds: float
    latency: Stats
    client_cpu: float
    gateway_cpu: float | None
    version: str
    resumed: int

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds else float("nan")


def measure_handshakes(
    deployment: Deployment, *, max_count: int, max_seconds: float
) -> Handshakes:
    """Full mTLS handshakes, each on a fresh connection, until either bound."""
    assert deployment.settings is not None and deployment.pki is not None
    assert deployment.gateway is not None
    pki = deployment.pki
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    context.set_alpn_protocols(["h2"])
    address = ("127.0.0.1", deployment.settings.port)
    latencies: list[float] = []
    resumed = 0
    version = "?"
    gateway_before = _process_cpu(deployment.gateway.pid)
    cpu_before = time.process_time()
    started = time.monotonic()
    while len(latencies) < max_count and time.monotonic() - started < max_seconds:
        begun = time.perf_counter()
        with (
            socket.create_connection(address, timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            tls.sendall(HTTP2_PREFACE + EMPTY_SETTINGS_FRAME)
            frame = tls.recv(9)
            version = tls.version() or "?"
            resumed += int(tls.session_reused)
        if len(frame) < 9 or frame[3] != 0x04:
            raise RuntimeError("the gateway closed a handshake without SETTINGS")
        latencies.append(time.perf_counter() - begun)
    seconds = time.monotonic() - started
    client_cpu = time.process_time() - cpu_before
    gateway_after = _process_cpu(deployment.gateway.pid)
    gateway_cpu = (
        gateway_after - gateway_before
        if gateway_after is not None and gateway_before is not None
        else None
    )
    return Handshakes(
        count=len(latencies),
        seconds=seconds,
        latency=Stats.of(latencies),
        client_cpu=client_cpu,
        gateway_cpu=gateway_cpu,
        version=version,
        resumed=resumed,
    )


def _process_cpu(pid: int | None) -> float | None:
    """User plus system CPU seconds of a process, from /proc."""
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


# The whole feature, and a cold image build


def behave_config(workdir: Path) -> Path:
    """A copy of the project's behave settings that writes reports into ``workdir``."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    settings = dict(project.get("tool", {}).get("behave", {}))
    formats = list(settings.get("format", []))
    settings["paths"] = [str(FEATURE.parent)]
    settings["outfiles"] = [
        str(workdir / f"{i}-{name}.out") for i, name in enumerate(formats)
    ]
    settings["junit_directory"] = str(workdir / "junit")
    path = workdir / "pyproject.toml"
    path.write_text(tomli_w.dumps({"tool": {"behave": settings}}))
    return path


def measure_feature(run: SuiteRun, runs: int) -> list[dict[str, Any]]:
    """Wall time of ``behave FEATURE`` in a subprocess, with its verdict."""
    assert run.podman is not None
    behave = Path(sys.executable).with_name("behave")
    results = []
    for _ in range(runs):
        workdir = Path(tempfile.mkdtemp(prefix="openshell-bench-behave-"))
        try:
            behave_config(workdir)
            log = workdir / "behave.log"
            with log.open("wb") as sink:
                started = time.monotonic()
                process = subprocess.Popen(
                    [str(behave), str(FEATURE)],
                    cwd=workdir,
                    stdin=subprocess.DEVNULL,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                try:
                    code = process.wait(timeout=FEATURE_TIMEOUT)
                except BaseException:
                    _interrupt(process)
                    raise
                seconds = time.monotonic() - started
            output = log.read_text(errors="replace")
            results.append(
                {"seconds": seconds, "exit_code": code, "summary": _summary(output)}
            )
        finally:
            run.podman.remove_leftovers(current_run=run.id)
            shutil.rmtree(workdir, ignore_errors=True)
    return results


def _interrupt(process: subprocess.Popen[bytes]) -> None:
    """SIGINT first, so that behave runs its own cleanup; then harder."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        _end(process)


def _summary(output: str) -> str:
    lines = [line for line in output.splitlines() if " scenario" in line]
    return lines[-1].strip() if lines else "(no summary)"


def measure_cold_build(run: SuiteRun) -> tuple[float, str]:
    """Build the image from scratch under a temporary tag and label, then drop it."""
    assert run.podman is not None
    recipe = dataclasses.replace(Recipe.load(), name=COLD_NAME, label=COLD_LABEL)
    images = run.podman.client().images
    _remove_image(run, recipe.tag)
    started = time.monotonic()
    try:
        build_sandbox_image(run.podman, recipe)
        seconds = time.monotonic() - started
        size = images.get(recipe.tag).attrs.get("Size", 0)
    finally:
        _remove_image(run, recipe.tag)
    return seconds, f"{size / 1e6:.0f} MB"


def _remove_image(run: SuiteRun, tag: str) -> None:
    assert run.podman is not None
    images = run.podman.client().images
    if images.exists(tag):
        images.remove(tag, force=True)


# Where the supervisor's time goes

# Runs with the image's own Python inside a sandbox-like container, and with
# the suite's Python on the host: the imports a supervisor needs, then a gRPC
# channel over mutual TLS and the first answer to a SupervisorHello (for a
# sandbox the gateway does not know, so that no real session is disturbed).
# Only the public contract is used: grpc and the openshell package's protos.
SESSION_PROBE = r"""
import json, os, sys, threading, time
def uptime():
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])
with open("/proc/self/stat") as f:
    started = int(f.read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
phases = {"interpreter start": uptime() - started}
mark = time.perf_counter()
def lap(name):
    global mark
    now = time.perf_counter()
    phases[name] = now - mark
    mark = now
import ssl
lap("import ssl")
import grpc
lap("import grpc")
import importlib.util, types
if "openshell" not in sys.modules:
    spec = importlib.util.find_spec("openshell")
    package = types.ModuleType("openshell")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["openshell"] = package
from openshell._proto import openshell_pb2 as pb2, openshell_pb2_grpc as pb2_grpc
lap("import protos")
target, ca, cert, key, name = sys.argv[1:6]
read = lambda path: open(path, "rb").read()
credentials = grpc.ssl_channel_credentials(read(ca), read(key), read(cert))
options = [("grpc.ssl_target_name_override", name)] if name else []
channel = grpc.secure_channel(target, credentials, options=options)
grpc.channel_ready_future(channel).result(timeout=10)
lap("channel ready (TCP, TLS, HTTP/2)")
done = threading.Event()
def messages():
    hello = pb2.SupervisorHello(sandbox_id="bench-probe", instance_id="bench-probe")
    yield pb2.SupervisorMessage(hello=hello)
    done.wait(10)
call = pb2_grpc.OpenShellStub(channel).ConnectSupervisor(messages(), timeout=10)
next(call)
lap("first answer to a hello")
done.set()
call.cancel()
print(json.dumps(phases), flush=True)
os._exit(0)
"""


def measure_session_profile(
    deployment: Deployment, runs: int
) -> dict[str, dict[str, Stats]]:
    """The probe's phases in a sandbox-like container and on the host, in turns."""
    assert deployment.settings is not None and deployment.pki is not None
    sandbox, _ = start_and_wait(deployment)
    try:
        spec = _sandbox_like(deployment, sandbox)
    finally:
        delete_sandboxes(deployment, [sandbox])
    pki = deployment.pki
    host_args = [
        f"127.0.0.1:{deployment.settings.port}",
        str(pki.ca_cert),
        str(pki.client_cert),
        str(pki.client_key),
        "localhost",
    ]
    found: dict[str, dict[str, list[float]]] = {"sandbox": {}, "host": {}}
    for _ in range(runs):
        for where, phases in (
            ("sandbox", _probe_in_container(deployment, spec)),
            ("host", _probe_on_host(host_args)),
        ):
            for phase, seconds in phases.items():
                found[where].setdefault(phase, []).append(seconds)
    return {
        where: {phase: Stats.of(values) for phase, values in phases.items()}
        for where, phases in found.items()
    }


def _sandbox_like(deployment: Deployment, sandbox: Sandbox) -> dict[str, Any]:
    """Create arguments for a container with the sandbox's image, network,
    mounts, hosts and environment, running the probe instead of the supervisor."""
    inspect = deployment.container(sandbox)
    if inspect is None:
        raise RuntimeError(f"sandbox {sandbox.name} has no container to copy")
    env = dict(item.split("=", 1) for item in inspect["Config"]["Env"])
    endpoint = env.get("OPENSHELL_ENDPOINT", "").split("://", 1)[-1]
    return {
        "image": inspect["ImageName"],
        "network_mode": "bridge",
        "networks": {deployment.network_name: {}},
        "mounts": [
            {
                "type": "bind",
                "source": mount["Source"],
                "target": mount["Destination"],
                "read_only": True,
            }
            for mount in inspect["Mounts"]
            if mount.get("Type") == "bind"
        ],
        "extra_hosts": dict(
            host.split(":", 1) for host in inspect["HostConfig"].get("ExtraHosts") or []
        ),
        "environment": env,
        "user": "0:0",
        "labels": {RUN_LABEL: deployment.run_id, OWNER_LABEL: owner_id()},
        "command": [
            "/usr/bin/python3",
            "-c",
            SESSION_PROBE,
            endpoint,
            env.get("OPENSHELL_TLS_CA", ""),
            env.get("OPENSHELL_TLS_CERT", ""),
            env.get("OPENSHELL_TLS_KEY", ""),
            "",
        ],
    }


def _probe_in_container(deployment: Deployment, spec: dict[str, Any]) -> dict:
    containers = deployment.podman.client().containers
    container = containers.create(**spec)
    try:
        container.start()

        def exited() -> bool | None:
            container.reload()
            return True if container.status in ("exited", "stopped") else None

        if poll(exited, timeout=PROBE_TIMEOUT) is None:
            raise RuntimeError(f"the session probe ran over {PROBE_TIMEOUT:.0f}s")
        output = b"".join(
            part if isinstance(part, bytes) else part.encode()
            for part in container.logs(stdout=True, stderr=True)
        ).decode(errors="replace")
    finally:
        container.remove(force=True)
    return _probe_result(output)


def _probe_on_host(args: Sequence[str]) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", SESSION_PROBE, *args],
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT,
        check=False,
    )
    return _probe_result(result.stdout + result.stderr)


def _probe_result(output: str) -> dict:
    for line in reversed(output.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    last = output.strip().splitlines()[-1:] or ["(no output)"]
    raise RuntimeError(f"the session probe failed: {last[0]}")


def print_profile(profile: Mapping[str, Mapping[str, Stats]]) -> None:
    say("where a supervisor's time goes: the same probe in a sandbox-like")
    say("container (through the bridge) and on the host (straight to 127.0.0.1),")
    say("median seconds")
    phases = list(profile["sandbox"])
    width = max(len(phase) for phase in phases)
    say(f"  {'phase'.ljust(width)}  sandbox    host")
    for phase in phases:
        inside = profile["sandbox"][phase].median
        outside = profile["host"].get(phase, Stats(())).median
        say(f"  {phase.ljust(width)}  {inside:7.3f}  {outside:7.3f}")


# The run


@contextmanager
def uninterrupted() -> Iterator[None]:
    """Let cleanup finish: a second Ctrl-C while it runs is ignored."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def print_ready(title: str, samples: Sequence[ReadySample]) -> dict[str, Stats]:
    stats = {
        "gateway": Stats.of([s.gateway for s in samples]),
        "polled": Stats.of([s.polled for s in samples]),
        "create_returned": Stats.of([s.create_returned for s in samples]),
        "container_started": Stats.of([s.container_started for s in samples]),
    }
    say(title)
    say(f"  at the gateway (SupervisorConnected)  {stats['gateway'].line()}")
    say(f"  seen by the suite's polling           {stats['polled'].line()}")
    say(f"  CreateSandbox answered                {stats['create_returned'].line()}")
    say(f"  container StartedAt                   {stats['container_started'].line()}")
    return stats


def bench(args: argparse.Namespace, report: Report) -> None:
    userdata = dict(item.split("=", 1) for item in args.define)
    run = SuiteRun(userdata, log=note)
    deployment: Deployment | None = None
    try:
        run.start()
        report.facts = machine_facts(run)
        facts = report.facts
        say(
            f"machine: {facts['cores']} cores ({facts['cpu']}), kernel "
            f"{facts['kernel']}, Podman {facts['podman_service']}, "
            f"Python {facts['python']}, {facts['date']}"
        )
        say(
            f"podman service: {', '.join(facts['podman_adaptations']) or 'as is'}; "
            f"CLI remote through it: {facts['podman_cli_remote']}"
        )
        say(f"load average at start: {_load(facts['load_average_start'])}")
        say()

        deployment = run.deployment()
        deployment.create_pki()
        deployment.configure()
        deployment.start_gateway()
        deployment.client()

        floors, samples = measure_floor_and_ready(run, deployment, args.runs)
        floor = Stats.of(floors["python"])
        echo = Stats.of(floors["echo"])
        say("floor: podman run IMAGE /usr/bin/python3 -c 'print(1)' to first line")
        say(f"  {floor.line()}")
        say(f"  same with echo: {echo.line()}")
        api = Stats.of(floors["api"])
        say(f"  API create + start of a bare container (no output): {api.line()}")
        report.figures["floor"] = floor.to_dict()
        report.figures["floor_echo"] = echo.to_dict()
        report.figures["api_create_start"] = api.to_dict()
        single = print_ready(
            "time to ready, one sandbox at a time (CreateSandbox to mTLS session)",
            samples,
        )
        report.figures["ready"] = {k: v.to_dict() for k, v in single.items()}
        for key in ("gateway", "polled"):
            say(
                f"  ratio to the floor ({key}): {single[key].median / floor.median:.2f}"
            )
        say()

        if args.profile:
            profile = measure_session_profile(deployment, args.profile_runs)
            print_profile(profile)
            report.figures["session_profile"] = {
                where: {phase: stats.to_dict() for phase, stats in phases.items()}
                for where, phases in profile.items()
            }
            say()

        shakes = measure_handshakes(
            deployment, max_count=args.handshakes, max_seconds=args.handshake_seconds
        )
        gateway_ms = (
            f"{1000 * shakes.gateway_cpu / shakes.count:.2f} ms"
            if shakes.gateway_cpu is not None and shakes.count
            else "n/a"
        )
        say(f"mTLS handshakes at the gateway (127.0.0.1, {shakes.version}, one client)")
        say(
            f"  {shakes.per_second:.0f}/s: {shakes.count} in {shakes.seconds:.2f}s; "
            f"latency {shakes.latency.line()}"
        )
        say(
            f"  CPU per handshake: client {1000 * shakes.client_cpu / shakes.count:.2f}"
            f" ms, gateway {gateway_ms}; resumed sessions {shakes.resumed}"
        )
        report.figures["handshakes"] = {
            "per_second": shakes.per_second,
            "count": shakes.count,
            "seconds": shakes.seconds,
            "latency": shakes.latency.to_dict(),
            "client_cpu_seconds": shakes.client_cpu,
            "gateway_cpu_seconds": shakes.gateway_cpu,
            "version": shakes.version,
        }
        say()

        say("sandboxes started at once: time to ready (gateway | polled), and")
        say("CPU seconds per sandbox: supervisor, gateway, podman service, bench,")
        say("the rest of the machine (runc, conmon, netavark, kernel, other users)")
        levels: dict[int, Level] = {}
        for count in LEVELS:
            level = measure_level(deployment, count, run.podman.pid)
            levels[count] = level
            gateway = Stats.of([s.gateway for s in level.samples])
            polled = Stats.of([s.polled for s in level.samples])
            cpu = level.cpu
            say(
                f"  {count:>2}: median {gateway.median:.3f}s max {gateway.max:.3f}s"
                f"  |  median {polled.median:.3f}s max {polled.max:.3f}s"
            )
            for cause in dict.fromkeys(level.failures):
                say(f"      NOT READY ({level.failures.count(cause)}): {cause}")
            say(
                f"      cpu/sandbox {cpu['system']:.3f}s: supervisor "
                f"{cpu['supervisor']:.3f} gateway {cpu['gateway']:.3f} podman "
                f"{cpu['podman']:.3f} bench {cpu['bench']:.3f} rest {cpu['rest']:.3f}"
            )
        report.figures["levels"] = {
            str(n): {
                "gateway": Stats.of([s.gateway for s in lv.samples]).to_dict(),
                "polled": Stats.of([s.polled for s in lv.samples]).to_dict(),
                "cpu_per_sandbox": lv.cpu,
                "wall": lv.wall,
                "failures": list(lv.failures),
            }
            for n, lv in levels.items()
        }
        say()
        with uninterrupted():
            deployment.close()
            deployment = None

        features = measure_feature(run, args.feature_runs)
        for result in features:
            say(
                f"whole feature, warm image: {result['seconds']:.1f}s, exit code "
                f"{result['exit_code']}, {result['summary']}"
            )
        report.figures["feature"] = features

        if args.skip_cold:
            say("cold image build: skipped (--skip-cold)")
        else:
            seconds, size = measure_cold_build(run)
            say(
                f"cold image build (temporary tag, cached image kept): "
                f"{seconds:.1f}s, {size}"
            )
            report.figures["cold_build_seconds"] = seconds
        report.facts["load_average_end"] = list(os.getloadavg())
        say(f"load average at end: {_load(report.facts['load_average_end'])}")
        say()

        say("targets")
        ratio = single["gateway"].median / floor.median
        report.target(
            "time to ready <= 1.5 x floor",
            ratio,
            READY_RATIO_TARGET,
            f"{single['gateway'].median:.3f}s / {floor.median:.3f}s = {ratio:.2f} x"
            f" (polled: {single['polled'].median / floor.median:.2f} x)",
            strict=False,
        )
        if features:
            slowest = max(result["seconds"] for result in features)
            report.target(
                "whole feature < 60 s warm",
                slowest,
                FEATURE_SECONDS_TARGET,
                f"{slowest:.1f}s",
                strict=True,
            )
        last = levels[LEVELS[-1]].samples
        top = Stats.of([s.gateway for s in last]).median
        scale = top / single["gateway"].median
        polled_scale = (
            Stats.of([s.polled for s in last]).median / single["polled"].median
        )
        report.target(
            "16 at once: median <= 4 x single median",
            scale,
            SCALE_RATIO_TARGET,
            f"{top:.3f}s / {single['gateway'].median:.3f}s = {scale:.2f} x"
            f" (polled: {polled_scale:.2f} x)",
            strict=False,
        )
    finally:
        with uninterrupted():
            if deployment is not None:
                deployment.close()
            run.close()


def _load(values: Sequence[float]) -> str:
    return " ".join(f"{value:.2f}" for value in values)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9, help="timed runs per figure")
    parser.add_argument(
        "--skip-cold",
        action="store_true",
        help="leave out the cold image build (about a minute)",
    )
    parser.add_argument(
        "--feature-runs",
        type=int,
        default=1,
        help="how many times to run the whole feature",
    )
    parser.add_argument(
        "--handshakes", type=int, default=2000, help="at most this many handshakes"
    )
    parser.add_argument(
        "--handshake-seconds", type=float, default=5.0, help="for at most this long"
    )
    parser.add_argument(
        "--no-profile",
        dest="profile",
        action="store_false",
        help="leave out the probe of where a supervisor's time goes",
    )
    parser.add_argument(
        "--profile-runs", type=int, default=7, help="runs of that probe"
    )
    parser.add_argument(
        "-D",
        "--define",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="as behave's -D, for the target",
    )
    parser.add_argument(
        "--json", type=Path, metavar="PATH", help="also write the figures as JSON"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    report = Report()
    try:
        bench(args, report)
    except KeyboardInterrupt:
        note("interrupted; everything the bench created is removed")
        return 130
    finally:
        if args.json is not None:
            args.json.write_text(json.dumps(dataclasses.asdict(report), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
