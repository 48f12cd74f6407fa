"""How PodmanService chooses, starts and stops a Podman API, against fake podmans.

A fake ``podman`` is a small script: it serves ``GET /_ping`` on the socket
it is given, or fails the way a broken Podman does. No Podman is needed.
"""

from __future__ import annotations

import http.server
import json
import os
import socketserver
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from openshell_acceptance import podman as podman_module
from openshell_acceptance.errors import PreflightError
from openshell_acceptance.podman import (
    HostFacts,
    PodmanNotInstalled,
    PodmanService,
    PodmanUnsupported,
    ServiceStartError,
    SocketUnresponsive,
    _owner_alive,
    owner_id,
)

NEEDS_ADAPTATION = HostFacts("hybrid", "/usr/sbin/runc", 20000, 96362, 32768, False)
NEEDS_NOTHING = HostFacts("v2", None, None, None, 4194304, False)

FAKE_SERVICE = textwrap.dedent(
    """\
    import http.server, json, os, signal, socketserver, sys

    record = os.environ["FAKE_PODMAN_RECORD"]
    with open(record, "w") as out:
        json.dump({"argv": sys.argv[1:], "env": dict(os.environ)}, out)
    path = sys.argv[-1].removeprefix("unix://")

    class Ping(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args):
            pass

    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    server = socketserver.UnixStreamServer(path, Ping)
    server.serve_forever()
    """
)


def fake_podman(directory: Path, body: str) -> str:
    script = directory / "podman"
    script.write_text(f"#!{sys.executable}\n{body}")
    script.chmod(0o755)
    return str(script)


class _Ping(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def answering_socket(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "user.sock")
    server = socketserver.UnixStreamServer(path, _Ping)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield path
    server.shutdown()
    server.server_close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in _state(pid)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


def test_missing_podman_names_the_package(tmp_path: Path) -> None:
    service = PodmanService(tmp_path, podman="no-such-podman-here")
    with pytest.raises(PodmanNotInstalled, match="apt-get install podman"):
        service.start()


def test_failures_are_preflight_errors(tmp_path: Path) -> None:
    service = PodmanService(tmp_path, podman="no-such-podman-here")
    with pytest.raises(PreflightError):
        service.start()


def test_a_host_podman_cannot_serve_is_refused_before_anything_starts(
    tmp_path: Path,
) -> None:
    podman = fake_podman(tmp_path, "raise SystemExit(3)\n")
    facts = HostFacts("hybrid", None, None, None, None, False)
    with pytest.raises(PodmanUnsupported, match="apt-get install runc"):
        PodmanService(tmp_path, facts=facts, podman=podman).start()
    assert not (tmp_path / "containers.conf").exists()


def test_an_explicit_socket_that_does_not_answer_is_an_error(tmp_path: Path) -> None:
    dead = str(tmp_path / "dead.sock")
    service = PodmanService(
        tmp_path, socket_path=dead, facts=NEEDS_NOTHING, podman=sys.executable
    )
    with pytest.raises(SocketUnresponsive) as raised:
        service.start()
    assert str(raised.value) == (
        f"Podman API socket {dead} does not answer: start it with "
        f"`podman system service --time=0 unix://{dead}`"
    )


def test_an_answering_socket_is_used_when_nothing_needs_adapting(
    tmp_path: Path, answering_socket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTAINER_HOST", f"unix://{answering_socket}")
    podman = fake_podman(tmp_path, "raise SystemExit('must not be started')\n")
    with PodmanService(tmp_path, facts=NEEDS_NOTHING, podman=podman).start() as svc:
        assert svc.socket_path == answering_socket
        assert not svc.started_by_us
        assert svc.adaptations == ()
        assert svc.env == {"CONTAINER_HOST": f"unix://{answering_socket}"}
    assert not (tmp_path / "containers.conf").exists()


def test_an_adapting_host_gets_its_own_service_with_its_own_conf(
    tmp_path: Path, answering_socket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTAINER_HOST", f"unix://{answering_socket}")
    record = tmp_path / "record.json"
    monkeypatch.setenv("FAKE_PODMAN_RECORD", str(record))
    podman = fake_podman(tmp_path, FAKE_SERVICE)
    workdir = tmp_path / "work"
    lines: list[str] = []

    service = PodmanService(
        workdir, facts=NEEDS_ADAPTATION, podman=podman, log=lines.append
    )
    with service.start() as svc:
        pid = svc.pid or -1
        seen = json.loads(record.read_text())
        assert svc.started_by_us
        assert svc.socket_path == str(workdir / "podman.sock")
        assert seen["argv"] == ["system", "service", "--time=0", svc.base_url]
        assert seen["env"]["CONTAINERS_CONF"] == str(workdir / "containers.conf")
        assert "CONTAINER_HOST" not in seen["env"]
        assert svc.env == {
            "CONTAINER_HOST": f"unix://{workdir / 'podman.sock'}",
            "CONTAINERS_CONF": str(workdir / "containers.conf"),
        }
        assert (workdir / "containers.conf").read_text() == svc.conf.text
        assert 'runtime = "runc"' in svc.conf.text
        assert lines == [svc.conf.summary()]
        svc.ping()
    assert not alive(pid)
    assert not (workdir / "podman.sock").exists()


def test_without_adaptations_its_own_service_keeps_the_hosts_conf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(podman_module, "_default_sockets", lambda: [])
    record = tmp_path / "record.json"
    monkeypatch.setenv("FAKE_PODMAN_RECORD", str(record))
    monkeypatch.setenv("CONTAINERS_CONF", "/elsewhere/containers.conf")
    podman = fake_podman(tmp_path, FAKE_SERVICE)
    workdir = tmp_path / "work"

    with PodmanService(workdir, facts=NEEDS_NOTHING, podman=podman).start() as svc:
        seen = json.loads(record.read_text())
        assert svc.started_by_us and svc.adaptations == ()
        assert seen["env"]["CONTAINERS_CONF"] == "/elsewhere/containers.conf"
        assert svc.env == {"CONTAINER_HOST": svc.base_url}
    assert not (workdir / "containers.conf").exists()


def test_a_service_that_exits_reports_its_last_line(tmp_path: Path) -> None:
    podman = fake_podman(
        tmp_path,
        "import sys\nprint('starting', flush=True)\n"
        "sys.stderr.write('Error: cannot open storage: boom\\n')\nsys.exit(125)\n",
    )
    service = PodmanService(tmp_path / "w", facts=NEEDS_ADAPTATION, podman=podman)
    with pytest.raises(ServiceStartError) as raised:
        service.start()
    assert str(raised.value) == (
        "podman system service exited with code 125: "
        "Error: cannot open storage: boom; `podman info` shows what Podman "
        "lacks on this host"
    )
    assert not service.started_by_us


def test_a_service_that_never_answers_is_bounded_and_stopped(tmp_path: Path) -> None:
    podman = fake_podman(
        tmp_path, "import os, time\nprint(os.getpid(), flush=True)\ntime.sleep(60)\n"
    )
    workdir = tmp_path / "w"
    service = PodmanService(
        workdir, facts=NEEDS_ADAPTATION, podman=podman, start_timeout=1.0
    )
    started = time.monotonic()
    with pytest.raises(ServiceStartError, match=r"did not answer on .* within 1s: "):
        service.start()
    assert time.monotonic() - started < 10
    pid = int((workdir / "podman-service.log").read_text().split()[0])
    assert not alive(pid)


def test_a_long_work_directory_is_refused_with_the_reason(tmp_path: Path) -> None:
    podman = fake_podman(tmp_path, "")
    workdir = tmp_path / ("d" * 120)
    with pytest.raises(ServiceStartError, match="shorter work directory"):
        PodmanService(workdir, facts=NEEDS_ADAPTATION, podman=podman).start()


def test_owner_labels_tell_a_live_run_from_a_dead_one() -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        owner = owner_id(sleeper.pid)
        assert owner.startswith(f"{sleeper.pid}:")
        assert _owner_alive(owner)
        pid, _, started = owner.partition(":")
        assert not _owner_alive(f"{pid}:{int(started) + 1}")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not _owner_alive(owner)
    assert not _owner_alive("")
    assert not _owner_alive("garbage")
    assert not _owner_alive(owner_id())
