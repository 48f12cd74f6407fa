"""``openshell-reference-gateway``: exit codes and one-line errors."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from openshell_reference.cli import main

PREFIX = "openshell-reference-gateway: error: "


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("OPENSHELL_") or name == "CONTAINER_HOST":
            monkeypatch.delenv(name)
    monkeypatch.setenv("GRPC_VERBOSITY", "NONE")
    monkeypatch.setenv("CONTAINER_HOST", f"unix://{tmp_path}/no-podman.sock")
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "pki"
    assert main(["generate-certs", "--output-dir", str(root)]) == 0
    return root


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(PREFIX), lines[0]
    assert "Traceback" not in captured.err
    return lines[0][len(PREFIX) :]


def tls_flags(pki: Path) -> list[str]:
    return [
        "--tls-cert",
        str(pki / "server/tls.crt"),
        "--tls-key",
        str(pki / "server/tls.key"),
        "--tls-client-ca",
        str(pki / "ca.crt"),
    ]


def write_config(tmp_path: Path, body: str) -> str:
    path = tmp_path / "gateway.toml"
    path.write_text("[openshell]\nversion = 1\n" + body)
    return str(path)


# generate-certs.


def test_generate_certs_writes_then_skips(tmp_path, capsys):
    out = tmp_path / "pki"
    args = ["generate-certs", "--output-dir", str(out)]

    assert main(args + ["--server-san", "host.openshell.internal"]) == 0
    assert "server SANs:" in capsys.readouterr().out
    assert main(args) == 0
    assert "skipping generation" in capsys.readouterr().out
    assert stat.S_IMODE(out.stat().st_mode) == 0o700


def test_generate_certs_on_a_partial_pki_exits_2_saying_how_to_recover(
    tmp_path, capsys
):
    out = tmp_path / "pki"
    main(["generate-certs", "--output-dir", str(out)])
    (out / "server/tls.key").unlink()
    capsys.readouterr()

    assert main(["generate-certs", "--output-dir", str(out)]) == 2
    message = one_error_line(capsys)
    assert "missing: server/tls.key" in message
    assert f"remove {out}" in message


def test_generate_certs_needs_an_output_dir(capsys):
    assert main(["generate-certs"]) == 2
    assert "--output-dir" in one_error_line(capsys)


# Refusals before anything starts.


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--disable-tls", "--tls-client-ca", "ca.crt"], "needs TLS"),
        (["--disable-tls", "--port", "9000", "--health-port", "9000"], "both 9000"),
        ([], "--tls-cert / OPENSHELL_TLS_CERT is not set"),
        (["--disable-tls", "--bind-address", "0.0.0.0"], "all addresses"),
        (["--disable-tls", "--bind-address", "::"], "all addresses"),
        (["--disable-tls", "--port", "http"], "--port 'http' is not a port"),
        (["--disable-tls", "--drivers", "docker"], "'docker'"),
        (["--disable-tls", "--log-level", "loud"], "--log-level 'loud'"),
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ],
)
def test_a_usage_error_is_one_line_and_exit_2(args, expected, capsys):
    assert main(args) == 2
    assert expected in one_error_line(capsys)


def test_an_environment_variable_is_refused_like_its_flag(monkeypatch, capsys):
    monkeypatch.setenv("OPENSHELL_DISABLE_TLS", "true")
    monkeypatch.setenv("OPENSHELL_TLS_CLIENT_CA", "/pki/ca.crt")

    assert main([]) == 2
    assert "--disable-tls cannot be combined" in one_error_line(capsys)


def test_a_partial_guest_tls_configuration_is_refused(tmp_path, pki, capsys):
    config = write_config(
        tmp_path,
        f'[openshell.gateway]\nguest_tls_ca = "{pki}/ca.crt"\n'
        f'[openshell.drivers.podman]\nguest_tls_cert = "{pki}/client/tls.crt"\n',
    )

    assert main(["--config", config, *tls_flags(pki)]) == 2
    assert one_error_line(capsys) == (
        "partial guest TLS configuration: missing --podman-tls-key / "
        "OPENSHELL_PODMAN_TLS_KEY (set all three guest_tls_* keys, or none)"
    )


def test_the_config_file_can_come_from_the_environment(
    tmp_path, pki, monkeypatch, capsys
):
    config = write_config(tmp_path, "[openshell.drivers.podman]\nsocket = 1\n")
    monkeypatch.setenv("OPENSHELL_GATEWAY_CONFIG", config)

    assert main(tls_flags(pki)) == 2
    assert "unknown key 'socket'" in one_error_line(capsys)


def test_a_newer_config_version_is_refused(tmp_path, pki, capsys):
    path = tmp_path / "v2.toml"
    path.write_text("[openshell]\nversion = 2\n")

    assert main(["--config", str(path), *tls_flags(pki)]) == 2
    assert "newer than this gateway understands" in one_error_line(capsys)


def test_a_key_that_does_not_match_is_refused(pki, capsys):
    flags = tls_flags(pki)
    flags[3] = str(pki / "client/tls.key")

    assert main(flags) == 2
    assert "does not match the certificate" in one_error_line(capsys)


def test_a_missing_guest_tls_file_is_refused(tmp_path, pki, capsys):
    config = write_config(
        tmp_path,
        "[openshell.drivers.podman]\n"
        f'guest_tls_ca = "{pki}/ca.crt"\n'
        f'guest_tls_cert = "{pki}/client/tls.crt"\n'
        f'guest_tls_key = "{tmp_path}/absent.key"\n',
    )

    assert main(["--config", config, *tls_flags(pki)]) == 2
    assert "guest_tls_key file" in one_error_line(capsys)


def test_a_dead_podman_socket_is_one_line_naming_it(tmp_path, pki, capsys):
    assert main(tls_flags(pki)) == 2
    message = one_error_line(capsys)
    assert f"{tmp_path}/no-podman.sock (from CONTAINER_HOST) does not exist" in message


def test_the_configured_socket_is_the_one_tried(tmp_path, pki, capsys):
    config = write_config(
        tmp_path, f'[openshell.drivers.podman]\nsocket_path = "{tmp_path}/mine.sock"\n'
    )

    assert main(["--config", config, *tls_flags(pki)]) == 2
    message = one_error_line(capsys)
    assert f"{tmp_path}/mine.sock" in message
    assert "no-podman.sock" not in message
