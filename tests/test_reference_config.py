"""The reference gateway's configuration: TOML, inheritance, precedence."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from openshell_reference.config import (
    GUEST_TLS_DRIVER_NAMES,
    INHERITED_KEYS,
    ConfigFile,
    GatewayTable,
    PodmanTable,
    config_path,
    default_socket_path,
    guest_tls_from,
    inherit_driver_table,
    load_config_file,
    parse_config,
    resolve_gateway_config,
    resolve_podman_config,
)
from openshell_reference.errors import (
    ConfigError,
    ConfigFileError,
    PartialGuestTLSError,
    UnknownKeyError,
    UnsupportedVersionError,
)

GUEST_TLS = ("guest_tls_ca", "guest_tls_cert", "guest_tls_key")
PATHS = {
    "guest_tls_ca": "/pki/ca.crt",
    "guest_tls_cert": "/pki/client/tls.crt",
    "guest_tls_key": "/pki/client/tls.key",
}
TLS_FLAGS = {"tls_cert": "/pki/server/tls.crt", "tls_key": "/pki/server/tls.key"}


def document(gateway: dict | None = None, podman: dict | None = None) -> dict:
    root: dict = {"version": 1}
    if gateway is not None:
        root["gateway"] = gateway
    if podman is not None:
        root["drivers"] = {"podman": podman}
    return {"openshell": root}


def podman_config(gateway: dict | None = None, podman: dict | None = None, **kw):
    file = parse_config(document(gateway, podman), "test.toml")
    options = {"server_port": 17670, "environ": {}, "uid": 0} | kw
    return resolve_podman_config(file, **options)


# Parsing.


def test_an_empty_document_gives_the_defaults():
    config = podman_config()

    assert config.network_name == "openshell"
    assert config.gateway_port == 17670
    assert config.image_pull_policy == "missing"
    assert config.stop_timeout_secs == 15
    assert config.guest_tls is None
    assert config.grpc_endpoint == "http://host.containers.internal:17670"


@pytest.mark.parametrize(
    ("doc", "key", "where"),
    [
        ({"extra": 1}, "extra", "top level"),
        ({"openshell": {"versoin": 1}}, "versoin", "[openshell]"),
        (document(gateway={"guest_tls_crt": "x"}), "guest_tls_crt", "gateway"),
        ({"openshell": {"drivers": {"docker": {}}}}, "docker", "[openshell.drivers]"),
        (document(podman={"socket": "/x"}), "socket", "drivers.podman"),
        (document(gateway={"auth": {}}), "auth", "[openshell.gateway]"),
    ],
)
def test_an_unknown_key_is_an_error_that_names_it(doc, key, where):
    with pytest.raises(UnknownKeyError) as caught:
        parse_config(doc, "my.toml")

    message = str(caught.value)
    assert f"'{key}'" in message
    assert where in message
    assert "my.toml" in message


def test_a_newer_version_is_refused():
    with pytest.raises(UnsupportedVersionError, match="version 2 .* newer"):
        parse_config({"openshell": {"version": 2}}, "my.toml")


def test_a_value_of_the_wrong_type_is_refused():
    with pytest.raises(ConfigError, match="stop_timeout_secs .* expected an integer"):
        parse_config(document(podman={"stop_timeout_secs": "15"}))
    with pytest.raises(ConfigError, match="compute_drivers .* array of strings"):
        parse_config(document(gateway={"compute_drivers": "podman"}))


def test_a_file_that_is_not_toml_is_refused_with_its_path(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[openshell\nversion = 1\n")

    with pytest.raises(ConfigFileError, match="bad.toml is not valid TOML"):
        load_config_file(path)


def test_a_missing_file_is_refused_with_the_flag_to_fix(tmp_path):
    with pytest.raises(ConfigFileError, match="does not exist; fix --config"):
        load_config_file(tmp_path / "absent.toml")


def test_the_contract_example_loads(tmp_path):
    path = tmp_path / "gateway.toml"
    path.write_text("""
[openshell]
version = 1

[openshell.gateway]
compute_drivers = ["podman"]
guest_tls_ca = "/pki/ca.crt"
guest_tls_cert = "/pki/client/tls.crt"
guest_tls_key = "/pki/client/tls.key"

[openshell.drivers.podman]
network_name = "openshell"
gateway_port = 17670
default_image = "localhost/sandbox:1"
image_pull_policy = "missing"
stop_timeout_secs = 15
supervisor_image = "localhost/supervisor:1"
socket_path = "/run/user/1000/podman/podman.sock"
""")
    file = load_config_file(path)

    config = resolve_podman_config(file, server_port=17670, environ={}, uid=1000)
    assert config.guest_tls is not None
    assert config.guest_tls.key == Path("/pki/client/tls.key")
    assert config.socket_path == Path("/run/user/1000/podman/podman.sock")
    assert config.grpc_endpoint == "https://host.containers.internal:17670"


# Inheritance from [openshell.gateway] into [openshell.drivers.podman].


@pytest.mark.parametrize("key", INHERITED_KEYS)
def test_a_key_set_only_in_the_gateway_table_is_inherited(key):
    merged = inherit_driver_table({key: "from-gateway"}, {})

    assert merged[key] == "from-gateway"


@pytest.mark.parametrize("key", INHERITED_KEYS)
def test_a_key_set_only_in_the_driver_table_is_kept(key):
    merged = inherit_driver_table({}, {key: "from-driver"})

    assert merged[key] == "from-driver"


@pytest.mark.parametrize("key", INHERITED_KEYS)
def test_the_driver_table_wins_when_both_set_a_key(key):
    merged = inherit_driver_table({key: "from-gateway"}, {key: "from-driver"})

    assert merged[key] == "from-driver"


def test_inheritance_is_per_key_across_both_tables():
    config = podman_config(
        gateway={"guest_tls_ca": "/g/ca.crt", "guest_tls_key": "/g/tls.key"},
        podman={"guest_tls_cert": "/d/tls.crt", "guest_tls_key": "/d/tls.key"},
    )

    assert config.guest_tls is not None
    assert config.guest_tls.ca == Path("/g/ca.crt")
    assert config.guest_tls.cert == Path("/d/tls.crt")
    assert config.guest_tls.key == Path("/d/tls.key")


def test_keys_that_are_not_inherited_stay_in_their_table():
    merged = inherit_driver_table(GatewayTable(compute_drivers=("podman",)), {})

    assert "compute_drivers" not in merged


def test_dataclass_tables_inherit_like_mappings():
    merged = inherit_driver_table(
        GatewayTable(default_image="gw-image"), PodmanTable(network_name="n")
    )

    assert merged == {"default_image": "gw-image", "network_name": "n"}


# Guest TLS: all three paths, or none.


PARTIAL_SETS = [
    set(combo) for size in (1, 2) for combo in itertools.combinations(GUEST_TLS, size)
]


@pytest.mark.parametrize("present", PARTIAL_SETS, ids=lambda s: "+".join(sorted(s)))
@pytest.mark.parametrize("table", ["gateway", "podman"])
def test_a_partial_guest_tls_configuration_names_exactly_the_missing_fields(
    present, table
):
    values = {key: PATHS[key] for key in present}
    tables = {"gateway": values} if table == "gateway" else {"podman": values}

    with pytest.raises(PartialGuestTLSError) as caught:
        podman_config(**tables)

    message = str(caught.value)
    assert message.startswith("partial guest TLS configuration: missing ")
    assert message.endswith("(set all three guest_tls_* keys, or none)")
    for key in GUEST_TLS:
        named = GUEST_TLS_DRIVER_NAMES[key] in message
        assert named == (key not in present), key


def test_the_partial_message_lists_the_missing_fields_in_order():
    with pytest.raises(PartialGuestTLSError) as caught:
        guest_tls_from({"guest_tls_ca": "/pki/ca.crt"})

    assert str(caught.value) == (
        "partial guest TLS configuration: missing --podman-tls-cert / "
        "OPENSHELL_PODMAN_TLS_CERT, --podman-tls-key / OPENSHELL_PODMAN_TLS_KEY "
        "(set all three guest_tls_* keys, or none)"
    )


def test_a_partial_configuration_can_come_from_both_tables():
    with pytest.raises(PartialGuestTLSError) as caught:
        podman_config(
            gateway={"guest_tls_ca": PATHS["guest_tls_ca"]},
            podman={"guest_tls_cert": PATHS["guest_tls_cert"]},
        )

    assert "OPENSHELL_PODMAN_TLS_KEY" in str(caught.value)
    assert "OPENSHELL_PODMAN_TLS_CA" not in str(caught.value)


def test_an_empty_path_counts_as_unset():
    assert guest_tls_from({key: "" for key in GUEST_TLS}) is None


def test_relative_guest_paths_are_taken_from_the_working_directory():
    tls = guest_tls_from(
        {"guest_tls_ca": "pki/ca.crt", "guest_tls_cert": "c", "guest_tls_key": "k"},
        Path("/work"),
    )

    assert tls is not None
    assert tls.ca == Path("/work/pki/ca.crt")


# The endpoint sandboxes dial.


def test_guest_tls_derives_an_https_endpoint_on_the_gateway_port():
    config = podman_config(podman=dict(PATHS, gateway_port=18000))

    assert config.grpc_endpoint == "https://host.containers.internal:18000"


def test_the_gateway_port_defaults_to_the_server_port():
    config = podman_config(podman=dict(PATHS), server_port=19999)

    assert config.gateway_port == 19999
    assert config.grpc_endpoint.endswith(":19999")


def test_an_explicit_endpoint_is_kept():
    endpoint = "https://host.openshell.internal:17670"
    config = podman_config(podman=dict(PATHS, grpc_endpoint=endpoint))

    assert config.grpc_endpoint == endpoint


def test_an_http_endpoint_with_guest_tls_is_refused():
    with pytest.raises(ConfigError, match="plaintext"):
        podman_config(podman=dict(PATHS, grpc_endpoint="http://h:1"))


def test_an_https_endpoint_without_guest_tls_is_refused():
    with pytest.raises(ConfigError, match="guest TLS is off"):
        podman_config(podman={"grpc_endpoint": "https://h:1"})


def test_an_endpoint_without_a_port_is_refused():
    with pytest.raises(ConfigError, match="is not an endpoint"):
        podman_config(podman={"grpc_endpoint": "http://h"})


# Other driver keys.


def test_an_unknown_pull_policy_is_refused():
    with pytest.raises(ConfigError, match="always, missing, never, newer"):
        podman_config(podman={"image_pull_policy": "IfNotPresent"})


def test_a_negative_stop_timeout_is_refused():
    with pytest.raises(ConfigError, match="stop_timeout_secs"):
        podman_config(podman={"stop_timeout_secs": -1})


def test_images_are_inherited_from_the_gateway_table():
    config = podman_config(
        gateway={"default_image": "img:1", "supervisor_image": "sup:1"}
    )

    assert config.default_image == "img:1"
    assert config.supervisor_image == "sup:1"


# The Podman socket.


def test_a_configured_socket_is_used_whatever_the_environment_says():
    config = podman_config(
        podman={"socket_path": "/srv/podman.sock"},
        environ={"CONTAINER_HOST": "unix:///other.sock"},
    )

    assert config.socket_path == Path("/srv/podman.sock")
    assert "socket_path" in config.socket_origin


def test_a_unix_url_is_accepted_as_socket_path():
    config = podman_config(podman={"socket_path": "unix:///srv/podman.sock"})

    assert config.socket_path == Path("/srv/podman.sock")


def test_a_relative_socket_path_is_refused():
    with pytest.raises(ConfigError, match="absolute"):
        podman_config(podman={"socket_path": "podman.sock"})


def test_without_socket_path_container_host_is_used():
    path, origin = default_socket_path({"CONTAINER_HOST": "unix:///x/p.sock"}, 0)

    assert path == Path("/x/p.sock")
    assert origin == "CONTAINER_HOST"


def test_a_container_host_that_is_not_a_unix_socket_is_refused():
    with pytest.raises(ConfigError, match="not a unix:// socket"):
        default_socket_path({"CONTAINER_HOST": "ssh://host/run/podman.sock"}, 0)


def test_root_and_users_have_their_own_default_sockets():
    assert default_socket_path({}, 0)[0] == Path("/run/podman/podman.sock")
    assert default_socket_path({"XDG_RUNTIME_DIR": "/run/user/7"}, 7)[0] == Path(
        "/run/user/7/podman/podman.sock"
    )
    assert default_socket_path({}, 8)[0] == Path("/run/user/8/podman/podman.sock")


# The whole gateway: flags, environment, TOML, defaults.


def gateway(cli: dict | None = None, env: dict | None = None, file=None, **kw):
    values = dict(TLS_FLAGS) if cli is None else cli
    return resolve_gateway_config(values, env or {}, file, **kw)


def test_the_gateway_defaults():
    config = gateway()

    assert config.bind_address == "127.0.0.1"
    assert config.port == 17670
    assert config.health_port == 0
    assert config.tls_enabled and not config.client_auth
    assert config.drivers == ("podman",)
    assert config.log_level == "info"
    assert config.sandbox_listener == "bridge"


def test_a_flag_beats_the_environment_which_beats_the_file_and_the_default():
    file = parse_config(
        document(gateway={"bind_address": "127.0.0.3:1000", "log_level": "debug"})
    )

    from_file = gateway(dict(TLS_FLAGS), {}, file)
    from_env = gateway(dict(TLS_FLAGS), {"OPENSHELL_SERVER_PORT": "2000"}, file)
    from_flag = gateway(
        dict(TLS_FLAGS, port="3000"), {"OPENSHELL_SERVER_PORT": "2000"}, file
    )

    assert (from_file.port, from_env.port, from_flag.port) == (1000, 2000, 3000)
    assert from_file.bind_address == "127.0.0.3"
    assert from_file.log_level == "debug"
    assert gateway(
        dict(TLS_FLAGS), {"OPENSHELL_LOG_LEVEL": "warn"}, file
    ).log_level == ("warn")


def test_every_setting_is_read_from_its_environment_variable():
    env = {
        "OPENSHELL_BIND_ADDRESS": "127.0.0.2",
        "OPENSHELL_SERVER_PORT": "1234",
        "OPENSHELL_HEALTH_PORT": "1235",
        "OPENSHELL_TLS_CERT": "/s/tls.crt",
        "OPENSHELL_TLS_KEY": "/s/tls.key",
        "OPENSHELL_TLS_CLIENT_CA": "/s/ca.crt",
        "OPENSHELL_DRIVERS": "podman",
        "OPENSHELL_DB_URL": "sqlite::memory:",
        "OPENSHELL_LOG_LEVEL": "debug",
        "OPENSHELL_REFERENCE_SANDBOX_LISTENER": "none",
    }
    config = gateway({}, env)

    assert config.bind_address == "127.0.0.2"
    assert (config.port, config.health_port) == (1234, 1235)
    assert config.tls_client_ca == Path("/s/ca.crt")
    assert config.client_auth
    assert config.db_url == "sqlite::memory:"
    assert config.sandbox_listener == "none"


def test_the_config_path_comes_from_the_flag_or_the_environment():
    env = {"OPENSHELL_GATEWAY_CONFIG": "/env.toml"}

    assert config_path({"config": "/flag.toml"}, env) == Path("/flag.toml")
    assert config_path({}, env) == Path("/env.toml")
    assert config_path({}, {}) is None


def test_disable_tls_with_a_client_ca_is_refused():
    with pytest.raises(ConfigError, match="client certificate verification needs TLS"):
        gateway({"disable_tls": True, "tls_client_ca": "/pki/ca.crt"})


def test_disable_tls_from_the_environment_with_a_client_ca_is_refused():
    env = {"OPENSHELL_DISABLE_TLS": "true", "OPENSHELL_TLS_CLIENT_CA": "/ca"}

    with pytest.raises(ConfigError, match="--disable-tls"):
        gateway({}, env)


def test_tls_without_a_certificate_is_refused():
    with pytest.raises(ConfigError, match="--tls-cert / OPENSHELL_TLS_CERT"):
        gateway({"tls_key": "/k"})
    with pytest.raises(ConfigError, match="--tls-key / OPENSHELL_TLS_KEY"):
        gateway({"tls_cert": "/c"})


def test_the_port_and_the_health_port_must_differ():
    with pytest.raises(ConfigError, match="--port and --health-port are both 9000"):
        gateway(dict(TLS_FLAGS, port="9000", health_port="9000"))


@pytest.mark.parametrize("address", ["0.0.0.0", "::"])
def test_listening_on_all_addresses_is_refused(address):
    with pytest.raises(ConfigError, match="all addresses"):
        gateway(dict(TLS_FLAGS, bind_address=address))


def test_a_bind_address_must_be_an_ip_address():
    with pytest.raises(ConfigError, match="not an IP address"):
        gateway(dict(TLS_FLAGS, bind_address="localhost"))


@pytest.mark.parametrize("port", ["0", "65536", "http", "-1"])
def test_a_bad_port_is_refused_naming_its_source(port):
    with pytest.raises(ConfigError, match="OPENSHELL_SERVER_PORT"):
        gateway(dict(TLS_FLAGS), {"OPENSHELL_SERVER_PORT": port})


def test_an_unsupported_driver_is_refused():
    with pytest.raises(ConfigError, match="'docker'"):
        gateway(dict(TLS_FLAGS, drivers="docker"))


def test_a_bad_boolean_in_the_environment_is_refused():
    with pytest.raises(ConfigError, match="OPENSHELL_DISABLE_TLS 'maybe'"):
        gateway({}, {"OPENSHELL_DISABLE_TLS": "maybe"})


def test_a_partial_guest_tls_configuration_stops_the_whole_gateway():
    file = parse_config(document(podman={"guest_tls_ca": "/pki/ca.crt"}))

    with pytest.raises(PartialGuestTLSError):
        gateway(dict(TLS_FLAGS), {}, file)


def test_the_health_bind_address_key_sets_the_health_listener():
    file = parse_config(document(gateway={"health_bind_address": "127.0.0.1:17671"}))

    assert gateway(dict(TLS_FLAGS), {}, file).health_port == 17671
    assert gateway(dict(TLS_FLAGS, health_port="1"), {}, file).health_port == 1


def test_relative_tls_paths_are_taken_from_the_working_directory():
    config = gateway({"tls_cert": "s/tls.crt", "tls_key": "s/tls.key"}, cwd=Path("/w"))

    assert config.tls_cert == Path("/w/s/tls.crt")


def test_the_file_source_is_recorded():
    file = parse_config(document(), "/etc/gw.toml")

    assert gateway(dict(TLS_FLAGS), {}, file).config_source == "/etc/gw.toml"
    assert gateway().config_source is None
    assert ConfigFile().source == "<no config file>"
