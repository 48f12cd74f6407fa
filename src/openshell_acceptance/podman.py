"""Podman through its REST API: the service the suite talks to, and what it asks.

The suite uses a socket that already answers when this host's Podman works
as configured. When it does not (cgroups v1, container limits above the
host's hard limits), the suite writes a containers.conf of its own and runs
``podman system service`` with ``CONTAINERS_CONF`` pointing at it, so that
nothing global changes. Everything it creates carries labels, so that it can
be found and removed again, even after a killed run.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import resource
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import podman.errors
import requests
from podman import PodmanClient

from ._wait import poll
from .errors import AcceptanceError, PreflightError

__all__ = [
    "MANAGED_LABEL",
    "NETWORK_PREFIX",
    "OWNER_LABEL",
    "PODMAN_DEFAULT_ULIMIT",
    "RUN_LABEL",
    "ContainerExited",
    "ContainerNotFound",
    "ContainerTimeout",
    "HostFacts",
    "ImageMissing",
    "Lane",
    "PodmanConf",
    "PodmanError",
    "PodmanNotInstalled",
    "PodmanService",
    "PodmanUnavailable",
    "PodmanUnsupported",
    "ServiceStartError",
    "SocketUnresponsive",
    "cgroup_layout",
    "decide_containers_conf",
    "lane_from_info",
    "owner_id",
    "rootless_blockers",
]

MANAGED_LABEL = "openshell.managed"
# How long Podman keeps an API exec session, and its conmon, after the
# command ends: long enough to read the exit code, which comes at once.
EXIT_COMMAND_DELAY_SECS = 10
RUN_LABEL = "openshell-acceptance.run"
OWNER_LABEL = "openshell-acceptance.owner"
NETWORK_PREFIX = "openshell-acceptance-"

PODMAN_DEFAULT_ULIMIT = 1048576
"""What rootful Podman asks for RLIMIT_NOFILE and RLIMIT_NPROC by default."""

_SOCKET_PATH_MAX = 107
_RUNC_DIRS = ("/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin")


# Podman cannot be used at all


class PodmanError(AcceptanceError):
    """Podman did not do what the suite asked of it."""


class PodmanUnavailable(PodmanError, PreflightError):
    """This host's Podman cannot serve the suite; the message names the fix."""


class PodmanNotInstalled(PodmanUnavailable):
    """The podman command is not installed."""


class PodmanUnsupported(PodmanUnavailable):
    """The host lacks something Podman needs to run containers here."""


class ServiceStartError(PodmanUnavailable):
    """The suite's own ``podman system service`` did not come up."""


class SocketUnresponsive(PodmanUnavailable):
    """A Podman API socket does not answer."""


class ImageMissing(PodmanUnavailable):
    """An image the run needs is not in local storage."""


# Containers


class ContainerNotFound(PodmanError):
    """No container has that name or ID."""


class ContainerExited(PodmanError):
    """A container stopped while it was expected to run."""


class ContainerTimeout(PodmanError):
    """A container did not reach the expected state in time."""


# What this host needs


@dataclass(frozen=True)
class HostFacts:
    """What decides whether Podman's defaults work on this host."""

    cgroup_layout: str
    runc: str | None
    nofile_hard: int | None
    nproc_hard: int | None
    pid_max: int | None
    rootless: bool
    selinux: bool = False
    tun_usable: bool = True

    @classmethod
    def detect(cls) -> HostFacts:
        return cls(
            cgroup_layout=cgroup_layout(_read("/proc/self/mounts")),
            runc=_find_runc(),
            nofile_hard=_hard_limit(resource.RLIMIT_NOFILE),
            nproc_hard=_hard_limit(resource.RLIMIT_NPROC),
            pid_max=_read_int("/proc/sys/kernel/pid_max"),
            rootless=os.geteuid() != 0,
            selinux=os.path.isdir("/sys/fs/selinux"),
            tun_usable=os.access("/dev/net/tun", os.R_OK | os.W_OK),
        )


@dataclass(frozen=True)
class PodmanConf:
    """The containers.conf the suite's Podman needs, and why."""

    text: str
    adaptations: tuple[str, ...] = ()
    blockers: tuple[str, ...] = ()

    @property
    def needed(self) -> bool:
        return bool(self.adaptations)

    def summary(self) -> str:
        if not self.adaptations:
            return "podman: no adaptation needed"
        return "podman: adapted " + ", ".join(self.adaptations)


def cgroup_layout(mounts: str) -> str:
    """``v2``, ``hybrid``, ``v1`` or ``none``, from the text of /proc/self/mounts."""
    types: dict[str, str] = {}
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            types[fields[1]] = fields[2]
    if types.get("/sys/fs/cgroup") == "cgroup2":
        return "v2"
    if types.get("/sys/fs/cgroup/unified") == "cgroup2":
        return "hybrid"
    if any(
        point.startswith("/sys/fs/cgroup/") and kind == "cgroup"
        for point, kind in types.items()
    ):
        return "v1"
    return "none"


def decide_containers_conf(facts: HostFacts) -> PodmanConf:
    """Decide what the suite's containers.conf must set on a host like ``facts``."""
    adaptations: list[str] = []
    blockers: list[str] = []
    containers: list[str] = []
    engine: list[str] = []

    if facts.cgroup_layout != "v2":
        # crun, Podman's default runtime, refuses hybrid layouts; runc
        # handles v1 and hybrid alike, so it is pinned whenever it exists.
        if facts.runc:
            engine.append('runtime = "runc"')
            adaptations.append(f"runtime=runc (cgroups {facts.cgroup_layout})")
        elif facts.cgroup_layout == "hybrid":
            blockers.append(
                "cgroups hybrid need the runc runtime: apt-get install runc"
            )

    ulimits: list[str] = []
    if not facts.rootless:
        # Rootless Podman already clamps these to its own limits.
        nofile = _ceiling(facts.nofile_hard)
        if nofile < PODMAN_DEFAULT_ULIMIT:
            ulimits.append(f"nofile={nofile}:{nofile}")
            adaptations.append(
                f"default_ulimits nofile={nofile}:{nofile} (hard limit {nofile})"
            )
        nproc, why = _nproc_ceiling(facts)
        if nproc < PODMAN_DEFAULT_ULIMIT:
            ulimits.append(f"nproc={nproc}:{nproc}")
            adaptations.append(f"default_ulimits nproc={nproc}:{nproc} ({why})")
    if ulimits:
        containers.append("default_ulimits = [")
        containers.extend(f'  "{limit}",' for limit in ulimits)
        containers.append("]")

    # Not an adaptation, so never the reason to write the file: where it is
    # written, the conmon of each exec session that came through the API
    # (each look inside a sandbox) ends seconds after its command instead of
    # waiting out Podman's default 300 s, which outlived the run.
    engine.append(f"exit_command_delay = {EXIT_COMMAND_DELAY_SECS}")

    lines = ["# The acceptance suite's own settings, used through CONTAINERS_CONF."]
    for table, entries in (("containers", containers), ("engine", engine)):
        if entries:
            lines += ["", f"[{table}]", *entries]
    return PodmanConf("\n".join(lines) + "\n", tuple(adaptations), tuple(blockers))


@dataclass(frozen=True)
class Lane:
    """The kind of Podman a run uses, as its API reports it."""

    rootless: bool
    version: str
    network: str
    storage: str = ""

    @property
    def name(self) -> str:
        return "rootless" if self.rootless else "rootful"

    def details(self) -> dict[str, str]:
        """What a report shows about the lane, by heading."""
        shown = {"Lane": self.name, "Podman": self.version, "Network": self.network}
        if self.storage:
            shown["Storage"] = self.storage
        return shown


def lane_from_info(info: Mapping[str, Any]) -> Lane:
    """The lane that a Podman ``info`` document describes."""
    host = info.get("host") or {}
    rootless = bool((host.get("security") or {}).get("rootless"))
    version = str((info.get("version") or {}).get("Version") or "unknown")
    # Podman before 4.0 has no netavark, and its info no networkBackend key.
    network = f"bridge ({host.get('networkBackend') or 'cni'})"
    if rootless:
        network += (
            f" in the rootless network namespace, through {_rootless_helper(host)}"
        )
    storage = str((info.get("store") or {}).get("graphDriverName") or "")
    return Lane(rootless, version, network, storage)


def rootless_blockers(
    info: Mapping[str, Any], facts: HostFacts, user: str
) -> list[str]:
    """What keeps a rootless Podman from running sandboxes here, one line each."""
    host = info.get("host") or {}
    blockers = []
    uidmap = (host.get("idMappings") or {}).get("uidmap") or []
    if len(uidmap) < 2:
        blockers.append(
            f"rootless Podman has no subordinate IDs for {user}: as root, add "
            f"ranges, e.g. `usermod --add-subuids 100000-165535 --add-subgids "
            f"100000-165535 {user}`, then run `podman system migrate`"
        )
    if not facts.tun_usable:
        blockers.append(
            f"rootless Podman's {_rootless_helper(host)} cannot open /dev/net/tun: "
            f"as root, let {user} use it, e.g. `setfacl -m u:{user}:rw "
            f"/dev/net/tun`"
        )
    return blockers


def _rootless_helper(host: Mapping[str, Any]) -> str:
    # Podman 5 names its helper; Podman 4 joins the rootless network namespace
    # to the host with slirp4netns and reports only where that lives.
    named = host.get("rootlessNetworkCmd")
    if named:
        return str(named)
    for helper in ("slirp4netns", "pasta"):
        if (host.get(helper) or {}).get("executable"):
            return helper
    return "its network helper"


def owner_id(pid: int | None = None) -> str:
    """A value for OWNER_LABEL naming this process, stable against PID reuse."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}:{_start_time(pid) or 0}"


# The service


@dataclass
class _Process:
    popen: subprocess.Popen[bytes]
    log_path: Path
    log_file: Any = field(repr=False)


class PodmanService:
    """The Podman API the suite uses: an answering socket, or one it runs itself.

    Use as ``with PodmanService(workdir).start() as podman: ...``. Failures
    to get a working API are ``PodmanUnavailable`` errors of one line.
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str] | None = None,
        *,
        log: Callable[[str], None] | None = None,
        socket_path: str | os.PathLike[str] | None = None,
        facts: HostFacts | None = None,
        podman: str = "podman",
        start_timeout: float = 30.0,
        api_timeout: float = 120.0,
    ) -> None:
        self.workdir = Path(workdir) if workdir is not None else None
        self._log = log
        self._explicit_socket = str(socket_path) if socket_path else None
        self._facts = facts
        self._podman = podman
        self._start_timeout = start_timeout
        self._api_timeout = api_timeout
        self._process: _Process | None = None
        self._client: PodmanClient | None = None
        self.socket_path = ""
        self.conf = PodmanConf("")
        self.adaptations: tuple[str, ...] = ()
        self._info: dict[str, Any] | None = None

    # Lifecycle

    def start(self, workdir: str | os.PathLike[str] | None = None) -> PodmanService:
        """Find or start a Podman API; raise ``PodmanUnavailable`` if none works."""
        if workdir is not None:
            self.workdir = Path(workdir)
        binary = shutil.which(self._podman)
        if binary is None:
            raise PodmanNotInstalled(
                f"{self._podman} is not installed: apt-get install podman"
            )

        self._facts = self._facts or HostFacts.detect()
        self.conf = decide_containers_conf(self._facts)
        if self.conf.blockers:
            raise PodmanUnsupported(self.conf.blockers[0])

        if self._explicit_socket:
            if not _answers(self._explicit_socket):
                raise SocketUnresponsive(_dead_socket_message(self._explicit_socket))
            self.socket_path = self._explicit_socket
            return self._checked()
        if not self.conf.needed:
            for candidate in _default_sockets():
                if _answers(candidate):
                    self.socket_path = candidate
                    return self._checked()

        self._start_own_service(binary)
        self.adaptations = self.conf.adaptations
        if self.adaptations and self._log is not None:
            self._log(self.conf.summary())
        return self._checked()

    def _checked(self) -> PodmanService:
        """This service, once a rootless one is known to be able to run sandboxes.

        A service that cannot is stopped, and ``PodmanUnsupported`` names the
        first thing it lacks.
        """
        facts = self._facts
        if facts is None or not facts.rootless:
            return self
        try:
            lane = self.lane()
            blockers = (
                rootless_blockers(self._host_info(), facts, _user_name())
                if lane.rootless
                else []
            )
        except BaseException:
            self.stop()
            raise
        if blockers:
            self.stop()
            raise PodmanUnsupported(blockers[0])
        if lane.rootless and self._log is not None:
            self._log(
                f"podman: rootless (Podman {lane.version}, {lane.network}): "
                "container limits left to Podman, rootful-only scenarios skipped"
            )
        return self

    def lane(self) -> Lane:
        """Which kind of Podman this is: rootful or rootless, version, network."""
        return lane_from_info(self._host_info())

    def _host_info(self) -> dict[str, Any]:
        if self._info is None:
            with self._api("read podman info"):
                self._info = dict(self.client().info())
        return self._info

    def stop(self) -> None:
        """Close the client and end the service this object started, if any."""
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None
        process, self._process = self._process, None
        if process is None:
            return
        try:
            _end(process.popen)
        finally:
            process.log_file.close()
            Path(self.socket_path).unlink(missing_ok=True)

    def __enter__(self) -> PodmanService:
        if not self.socket_path:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def started_by_us(self) -> bool:
        return self._process is not None

    @property
    def selinux(self) -> bool:
        """Whether SELinux is enabled here, so bind mounts need relabelling."""
        facts = self._facts or HostFacts.detect()
        return facts.selinux

    @property
    def pid(self) -> int | None:
        """The process ID of the service this object started."""
        return self._process.popen.pid if self._process else None

    @property
    def base_url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def log_path(self) -> Path | None:
        """The output of the service this object started."""
        return self._process.log_path if self._process else None

    @property
    def env(self) -> dict[str, str]:
        """Variables that point a child process at this same Podman."""
        values = {"CONTAINER_HOST": self.base_url}
        if self.started_by_us and self.conf.needed and self.workdir is not None:
            values["CONTAINERS_CONF"] = str(self.workdir / "containers.conf")
        return values

    def client(self) -> PodmanClient:
        """A podman-py client on this service, shared by the calls below."""
        if not self.socket_path:
            raise PodmanError("the Podman service is not started")
        if self._client is None:
            self._client = PodmanClient(
                base_url=self.base_url, timeout=self._api_timeout
            )
        return self._client

    def ping(self) -> None:
        """Raise ``SocketUnresponsive`` unless the socket answers now."""
        if self._process is not None and self._process.popen.poll() is not None:
            raise SocketUnresponsive(
                f"podman system service exited with code "
                f"{self._process.popen.returncode}: {self._last_output()}"
            )
        if not _answers(self.socket_path):
            raise SocketUnresponsive(_dead_socket_message(self.socket_path))

    def _start_own_service(self, binary: str) -> None:
        if self.workdir is None:
            raise PodmanError("a work directory is needed to run a Podman service")
        self.workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        socket_path = self.workdir / "podman.sock"
        if len(str(socket_path)) > _SOCKET_PATH_MAX:
            raise ServiceStartError(
                f"socket path {socket_path} is longer than {_SOCKET_PATH_MAX} "
                f"bytes: use a shorter work directory"
            )
        socket_path.unlink(missing_ok=True)

        env = {
            name: value
            for name, value in os.environ.items()
            if name not in ("CONTAINER_HOST", "CONTAINER_CONNECTION")
        }
        if self.conf.needed:
            # Limitation: CONTAINERS_CONF replaces the host's containers.conf
            # files instead of adding to them, so host settings other than the
            # adapted ones fall back to Podman's defaults in this service.
            conf_path = self.workdir / "containers.conf"
            conf_path.write_text(self.conf.text)
            env["CONTAINERS_CONF"] = str(conf_path)
        log_path = self.workdir / "podman-service.log"
        log_file = log_path.open("wb")
        argv = [binary, "system", "service", "--time=0", f"unix://{socket_path}"]
        try:
            # A session of its own keeps a terminal's Ctrl-C from reaching the
            # service before the suite has used it to clean up.
            popen = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            log_file.close()
            raise ServiceStartError(f"cannot run {binary}: {exc}") from None
        self._process = _Process(popen, log_path, log_file)
        self.socket_path = str(socket_path)

        def ready() -> bool | None:
            if popen.poll() is not None:
                raise ServiceStartError(
                    f"podman system service exited with code {popen.returncode}: "
                    f"{self._last_output()}; `podman info` shows what Podman "
                    "lacks on this host"
                )
            return True if _answers(self.socket_path, timeout=1.0) else None

        try:
            if poll(ready, timeout=self._start_timeout, first=0.02) is None:
                raise ServiceStartError(
                    f"podman system service did not answer on {socket_path} within "
                    f"{self._start_timeout:.0f}s: {self._last_output()}; if "
                    "`podman ps` hangs too, a stuck podman process holds Podman's "
                    "locks: find it with `pgrep -a podman`"
                )
        except BaseException:
            self.stop()
            raise

    def _last_output(self) -> str:
        if self._process is None:
            return "(no output)"
        self._process.log_file.flush()
        lines = [
            line.strip()
            for line in self._process.log_path.read_text(errors="replace").splitlines()
            if line.strip()
        ]
        return lines[-1] if lines else "(no output)"

    # Containers

    def containers_with_label(self, label: str) -> list[str]:
        """Names of containers, running or not, carrying ``key`` or ``key=value``."""
        return self._container_names([f"label={label}"])

    def managed_containers(self, network: str) -> list[str]:
        """Names of containers labelled ``openshell.managed=true`` on ``network``."""
        return self._container_names(
            [f"label={MANAGED_LABEL}=true", f"network={network}"]
        )

    def inspect(self, container: str) -> dict[str, Any]:
        """The container's inspect document, as Podman returns it."""
        with self._api(f"inspect container {container}"):
            try:
                return dict(self.client().containers.get(container).attrs)
            except podman.errors.NotFound:
                raise ContainerNotFound(f"no container {container}") from None

    def container_logs(
        self, container: str, *, tail: int | None = 1000, max_chars: int = 200_000
    ) -> str:
        """The container's stdout and stderr: the last ``tail`` lines, bounded."""
        with self._api(f"read logs of {container}"):
            try:
                frames = (
                    self.client()
                    .containers.get(container)
                    .logs(
                        stdout=True,
                        stderr=True,
                        tail=tail if tail is not None else "all",
                    )
                )
            except podman.errors.NotFound:
                raise ContainerNotFound(f"no container {container}") from None
            text = b"".join(_as_bytes(frame) for frame in frames)
        return text.decode("utf-8", errors="replace")[-max_chars:]

    def exec(
        self, container: str, command: Sequence[str], *, user: str | None = None
    ) -> tuple[int, str]:
        """Run ``command`` in a running container; its exit code and output."""
        with self._api(f"exec in {container}"):
            try:
                handle = self.client().containers.get(container)
                code, (out, err) = handle.exec_run(list(command), user=user, demux=True)
            except podman.errors.NotFound:
                raise ContainerNotFound(f"no container {container}") from None
        output = (out or b"") + (err or b"")
        return (-1 if code is None else int(code)), output.decode(errors="replace")

    def wait_until_running(
        self, container: str, *, timeout: float = 30.0
    ) -> dict[str, Any]:
        """Inspect once the container runs; raise if it stops or time runs out.

        A container that does not exist yet counts as not running yet: the
        gateway creates sandboxes in the background.
        """

        def running() -> dict[str, Any] | None:
            try:
                attrs = self.inspect(container)
            except ContainerNotFound:
                return None
            state = attrs.get("State", {})
            if state.get("Running"):
                return attrs
            if state.get("Status") in ("exited", "stopped"):
                raise ContainerExited(
                    f"container {container} exited with code "
                    f"{state.get('ExitCode')}: {self._last_log_line(container)}"
                )
            return None

        found = poll(running, timeout=timeout)
        if found is None:
            raise ContainerTimeout(
                f"container {container} was not running within {timeout:.0f}s"
            )
        return found

    def wait_until_exited(
        self, container: str, *, timeout: float = 30.0
    ) -> dict[str, Any]:
        """Inspect once the container has stopped; raise if time runs out."""

        def exited() -> dict[str, Any] | None:
            attrs = self.inspect(container)
            stopped = attrs.get("State", {}).get("Status") in ("exited", "stopped")
            return attrs if stopped else None

        found = poll(exited, timeout=timeout)
        if found is None:
            raise ContainerTimeout(
                f"container {container} was still running after {timeout:.0f}s"
            )
        return found

    # Networks and images

    def create_network(
        self, name: str, *, labels: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """Create a bridge network, or return the one of that name."""
        networks = self.client().networks
        with self._api(f"create network {name}"):
            if networks.exists(name):
                return dict(networks.get(name).attrs)
            return dict(
                networks.create(name, driver="bridge", labels=dict(labels or {})).attrs
            )

    def network_gateway(self, name: str) -> str | None:
        """The host-side address of a network's first subnet."""
        with self._api(f"inspect network {name}"):
            attrs = self.client().networks.get(name).attrs
        subnets = attrs.get("subnets") or []
        return subnets[0].get("gateway") if subnets else None

    def network_interface(self, name: str) -> str | None:
        """The host's bridge interface for a network, as Podman names it.

        The name is known before the bridge exists: Podman creates the
        interface when the first container attaches to the network.
        """
        with self._api(f"inspect network {name}"):
            attrs = self.client().networks.get(name).attrs
        return attrs.get("network_interface") or None

    def network_subnets(self, name: str) -> list[str]:
        """Every subnet of a network, in CIDR notation."""
        with self._api(f"inspect network {name}"):
            attrs = self.client().networks.get(name).attrs
        return [s["subnet"] for s in attrs.get("subnets") or [] if s.get("subnet")]

    def rootless(self) -> bool:
        """Whether this Podman runs rootless, with its networks out of sight.

        Rootless Podman keeps its bridges in a network namespace of its own,
        not in the host's.
        """
        return self.lane().rootless

    def image_exists(self, reference: str) -> bool:
        with self._api(f"look up image {reference}"):
            return bool(self.client().images.exists(reference))

    def ensure_image_present(self, reference: str, *, named_by: str) -> None:
        """Raise ``ImageMissing`` unless the image is in local storage; never pull.

        ``named_by`` is the -D parameter that named the image, for the message.
        """
        if not self.image_exists(reference):
            raise ImageMissing(
                f"-D {named_by}={reference} is not in local storage, and the "
                f"suite never pulls: load it with `podman load -i FILE` or build "
                f"it with `podman build -t {reference} ...`"
            )

    # Removal

    def remove_containers(
        self,
        *,
        label: str | None = None,
        network: str | None = None,
        names: Sequence[str] = (),
        stop_timeout: int = 1,
    ) -> list[str]:
        """Force-remove matching containers and their anonymous volumes."""
        filters = []
        if label:
            filters.append(f"label={label}")
        if network:
            filters.append(f"network={network}")
        if not filters and not names:
            raise ValueError("name a label, a network or containers to remove")
        targets = list(names)
        if filters:
            targets += self._container_names(filters)

        def remove(name: str) -> None:
            # The stop timeout bounds how long a container that ignores
            # SIGTERM (a PID 1 without handlers) delays the cleanup.
            response = self.client().api.delete(
                f"/containers/{name}",
                params={"force": True, "v": True, "timeout": stop_timeout},
            )
            response.raise_for_status()

        return self._remove_each("container", targets, remove)

    def remove_volumes(
        self, *, label: str | None = None, names: Sequence[str] = ()
    ) -> list[str]:
        """Force-remove matching volumes."""
        if not label and not names:
            raise ValueError("name a label or volumes to remove")
        targets = list(names)
        if label:
            with self._api("list volumes"):
                found = self.client().volumes.list(filters=[f"label={label}"])
            targets += [volume.name for volume in found]
        return self._remove_each(
            "volume",
            targets,
            lambda name: self.client().volumes.remove(name, force=True),
        )

    def remove_networks(
        self, *, label: str | None = None, names: Sequence[str] = ()
    ) -> list[str]:
        """Force-remove matching networks."""
        if not label and not names:
            raise ValueError("name a label or networks to remove")
        targets = list(names)
        if label:
            targets += [attrs["name"] for attrs in self._networks(label)]
        return self._remove_each(
            "network",
            targets,
            lambda name: self.client().networks.get(name).remove(force=True),
        )

    def remove_network(self, name: str) -> None:
        self.remove_networks(names=[name])

    def _remove_each(
        self, kind: str, names: Iterable[str], remove: Callable[[str], object]
    ) -> list[str]:
        """Remove each name once; one that is already gone is not in the result."""
        removed = []
        for name in dict.fromkeys(names):
            with self._api(f"remove {kind} {name}"), _missing_ok():
                remove(name)
                removed.append(name)
        return removed

    def remove_by_label(self, label: str) -> list[str]:
        """Remove containers, then volumes, then networks carrying ``label``."""
        removed = [f"container {n}" for n in self.remove_containers(label=label)]
        removed += [f"volume {n}" for n in self.remove_volumes(label=label)]
        removed += [f"network {n}" for n in self.remove_networks(label=label)]
        return removed

    def remove_leftovers(self, current_run: str) -> list[str]:
        """Remove what killed runs left behind; return what was removed.

        A leftover carries RUN_LABEL with another run's ID, or is a managed
        network named with NETWORK_PREFIX. Anything whose OWNER_LABEL names a
        process that is still alive belongs to a concurrent run and is kept.
        """
        client = self.client()

        def stale(labels: Mapping[str, str] | None) -> bool:
            labels = labels or {}
            if labels.get(RUN_LABEL) == current_run:
                return False
            return not _owner_alive(labels.get(OWNER_LABEL, ""))

        with self._api("list leftovers"):
            labelled = client.containers.list(all=True, filters=[f"label={RUN_LABEL}"])
            containers = [c.name for c in labelled if stale(c.labels)]
            volumes = [
                v.name
                for v in client.volumes.list(filters=[f"label={RUN_LABEL}"])
                if stale(v.attrs.get("Labels"))
            ]
        networks = [
            attrs["name"]
            for attrs in self._networks(RUN_LABEL)
            if stale(attrs.get("labels"))
        ]
        networks += [
            attrs["name"]
            for attrs in self._networks(f"{MANAGED_LABEL}=true")
            if attrs["name"].startswith(NETWORK_PREFIX) and stale(attrs.get("labels"))
        ]

        removed = []
        if containers:
            gone = self.remove_containers(names=containers)
            removed += [f"container {name}" for name in gone]
        if volumes:
            removed += [f"volume {n}" for n in self.remove_volumes(names=volumes)]
        if networks:
            removed += [f"network {n}" for n in self.remove_networks(names=networks)]
        return removed

    # Plumbing

    # podman-py takes several values per filter only as "key=value" strings,
    # and its network listing only as a mapping of one value per key.

    def _container_names(self, filters: Sequence[str]) -> list[str]:
        with self._api("list containers"):
            found = self.client().containers.list(all=True, filters=list(filters))
        return [container.name for container in found]

    def _networks(self, label: str) -> list[dict[str, Any]]:
        with self._api("list networks"):
            found = self.client().networks.list(filters={"label": label})
        return [dict(network.attrs) for network in found]

    def _last_log_line(self, container: str) -> str:
        try:
            lines = self.container_logs(container, tail=20).strip().splitlines()
        except PodmanError:
            return "(no logs)"
        return lines[-1] if lines else "(no output)"

    @contextlib.contextmanager
    def _api(self, action: str) -> Iterator[None]:
        try:
            yield
        except (podman.errors.NotFound, PodmanError):
            raise
        except (podman.errors.APIError, requests.exceptions.RequestException) as exc:
            # podman-py reports a failed connection as an APIError caused by
            # the requests exception; either way the cause tells what happened.
            cause = exc.__cause__ if isinstance(exc, podman.errors.APIError) else exc
            if isinstance(cause, requests.exceptions.ConnectionError):
                message = _dead_socket_message(self.socket_path)
                raise SocketUnresponsive(message) from None
            if isinstance(cause, requests.exceptions.Timeout):
                raise PodmanError(
                    f"podman could not {action}: "
                    f"no answer within {self._api_timeout:.0f}s"
                ) from None
            detail = getattr(exc, "explanation", None) or str(exc)
            raise PodmanError(f"podman could not {action}: {detail}") from None


# Helpers


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _read_int(path: str) -> int | None:
    text = _read(path).strip()
    return int(text) if text.isdigit() else None


def _find_runc() -> str | None:
    # Non-root PATHs often lack the sbin directories where runc is installed.
    found = shutil.which("runc")
    if found:
        return found
    for directory in _RUNC_DIRS:
        candidate = Path(directory) / "runc"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _hard_limit(kind: int) -> int | None:
    hard = resource.getrlimit(kind)[1]
    return None if hard == resource.RLIM_INFINITY else hard


def _ceiling(limit: int | None) -> int:
    return PODMAN_DEFAULT_ULIMIT if limit is None else limit


def _nproc_ceiling(facts: HostFacts) -> tuple[int, str]:
    # Podman lowers its own RLIMIT_NPROC to kernel.pid_max when it can, so a
    # container may ask for no more than the smaller of the two.
    hard = _ceiling(facts.nproc_hard)
    if facts.pid_max is not None and facts.pid_max < hard:
        return facts.pid_max, f"pid_max {facts.pid_max}, hard limit {hard}"
    return hard, f"hard limit {hard}"


def _user_name() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def _default_sockets() -> list[str]:
    candidates = []
    host = os.environ.get("CONTAINER_HOST", "")
    if host.startswith("unix://"):
        candidates.append(host.removeprefix("unix://"))
    if os.geteuid() == 0:
        candidates.append("/run/podman/podman.sock")
    else:
        runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
        candidates.append(f"{runtime}/podman/podman.sock")
    return candidates


def _answers(socket_path: str, *, timeout: float = 2.0) -> bool:
    if not socket_path or not os.path.exists(socket_path):
        return False
    transport = httpx.HTTPTransport(uds=socket_path)
    try:
        with httpx.Client(transport=transport, timeout=timeout) as http:
            response = http.get("http://podman/_ping")
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def _dead_socket_message(socket_path: str) -> str:
    return (
        f"Podman API socket {socket_path} does not answer: start it with "
        f"`podman system service --time=0 unix://{socket_path}`"
    )


def _end(popen: subprocess.Popen[bytes]) -> None:
    """End the service and every process of the session it was started in.

    Rootless Podman re-executes itself to join its user namespace, so the
    process that serves can be a child of the one the suite started; both
    stay in the session (and process group) the suite made for them.
    """
    group = popen.pid
    _signal_group(group, signal.SIGTERM)
    try:
        popen.wait(timeout=10)
    except subprocess.TimeoutExpired:
        _signal_group(group, signal.SIGKILL)
        popen.wait(timeout=5)
    if poll(lambda: None if _group_alive(group) else True, timeout=10) is None:
        _signal_group(group, signal.SIGKILL)


def _signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _start_time(pid: int) -> int | None:
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return None
    # The command name may hold spaces and parentheses; fields follow the last ")".
    fields = stat.rsplit(")", 1)[-1].split()
    return int(fields[19]) if len(fields) > 19 else None


def _owner_alive(owner: str) -> bool:
    pid_text, _, started = owner.partition(":")
    if not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    current = _start_time(int(pid_text))
    return current is not None and str(current) == started


def _as_bytes(frame: Any) -> bytes:
    if isinstance(frame, bytes):
        return frame
    if isinstance(frame, str):
        return frame.encode()
    return b"".join(_as_bytes(part) for part in frame if part)


@contextlib.contextmanager
def _missing_ok() -> Iterator[None]:
    try:
        yield
    except podman.errors.NotFound:
        pass
