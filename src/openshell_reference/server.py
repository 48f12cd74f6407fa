"""The gateway: ``openshell.v1.OpenShell`` over gRPC, plus health and relay.

Sandboxes live in memory. ``CreateSandbox`` starts a container through the
driver (phase PROVISIONING); the supervisor in it opens ``ConnectSupervisor``
and the sandbox turns READY, with the certificate subject the supervisor
presented recorded as the ``SupervisorConnected`` condition.
"""

from __future__ import annotations

import datetime
import queue
import re
import socket
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import Protocol

import grpc
from google.protobuf import duration_pb2, timestamp_pb2
from openshell._proto import datamodel_pb2, openshell_pb2, openshell_pb2_grpc

from . import __version__
from .certs import ServerTLSMaterial
from .driver import (
    ContainerState,
    ManagedContainer,
    SandboxRequest,
    container_name,
)
from .errors import (
    DriverError,
    ImageUnavailableError,
    ListenError,
    PodmanUnavailableError,
)
from .health import HealthListener
from .logs import event
from .relay import BridgeRelay

__all__ = [
    "CONDITION_CONTAINER",
    "CONDITION_SUPERVISOR",
    "Gateway",
    "OpenShellService",
    "SandboxDriver",
    "SandboxStore",
    "peer_subject",
]

CONDITION_SUPERVISOR = "SupervisorConnected"
CONDITION_CONTAINER = "ContainerRunning"
HEARTBEAT_INTERVAL_SECS = 5
HEARTBEAT_MISSES = 3
STOP_GRACE_SECS = 2.0
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class SandboxDriver(Protocol):
    """What the service needs from a compute driver."""

    def create_container(self, request: SandboxRequest) -> str: ...

    def container_state(self, name: str) -> ContainerState | None: ...

    def last_log_line(self, name: str) -> str: ...

    def stop_container(self, name: str) -> bool: ...

    def start_container(self, name: str) -> bool: ...

    def delete_container(self, name: str) -> bool: ...


def peer_subject(auth_context: Mapping[str, Sequence[bytes]]) -> str:
    """The peer certificate's subject from a gRPC auth context, or ''."""
    for key in ("x509_subject", "x509_subject_name"):
        values = auth_context.get(key)
        if values:
            return values[0].decode("utf-8", "replace")
    common_names = auth_context.get("x509_common_name")
    if common_names:
        return "CN=" + common_names[0].decode("utf-8", "replace")
    return ""


def _transport(auth_context: Mapping[str, Sequence[bytes]]) -> str:
    values = auth_context.get("transport_security_type")
    return values[0].decode() if values else "insecure"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _timestamp(moment: datetime.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


# The sandbox store.


@dataclass
class SandboxRecord:
    """One sandbox as the gateway tracks it; guarded by the store's lock."""

    id: str
    name: str
    workspace: str
    labels: dict[str, str]
    spec: openshell_pb2.SandboxSpec
    created_at: datetime.datetime
    container: str
    phase: int = openshell_pb2.SANDBOX_PHASE_PROVISIONING
    conditions: dict[str, openshell_pb2.SandboxCondition] = field(default_factory=dict)
    exit_code: int | None = None
    session_id: str | None = None
    instance_id: str = ""
    resource_version: int = 1

    def set_condition(self, kind: str, status: str, reason: str, message: str) -> None:
        current = self.conditions.get(kind)
        moment = _now()
        if current is not None and current.status == status:
            moment = current.transition_time.ToDatetime(datetime.UTC)
        self.conditions[kind] = openshell_pb2.SandboxCondition(
            type=kind,
            status=status,
            reason=reason,
            message=message,
            transition_time=_timestamp(moment),
        )
        self.resource_version += 1

    def to_proto(self) -> openshell_pb2.Sandbox:
        status = openshell_pb2.SandboxStatus(
            phase=self.phase,
            conditions=list(self.conditions.values()),
            main_process_instance_id=self.instance_id,
        )
        if self.exit_code is not None:
            status.exit_code = self.exit_code
        return openshell_pb2.Sandbox(
            metadata=datamodel_pb2.ObjectMeta(
                id=self.id,
                name=self.name,
                workspace=self.workspace,
                labels=self.labels,
                created_time=_timestamp(self.created_at),
                resource_version=self.resource_version,
            ),
            spec=self.spec,
            status=status,
        )


class SandboxExists(Exception):
    """A sandbox of that name already exists in the workspace."""


class SandboxStore:
    """The gateway's sandboxes, in memory, safe across gRPC worker threads."""

    # Limitation: nothing is persisted (the real gateway keeps a database); a
    # restarted gateway adopts the containers it finds by their labels, but
    # their specs are lost.

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._by_id: dict[str, SandboxRecord] = {}

    def add(self, record: SandboxRecord) -> None:
        with self.lock:
            if self.find(record.workspace, record.name) is not None:
                raise SandboxExists(record.name)
            self._by_id[record.id] = record

    def get(self, sandbox_id: str) -> SandboxRecord | None:
        with self.lock:
            return self._by_id.get(sandbox_id)

    def find(self, workspace: str, name: str) -> SandboxRecord | None:
        with self.lock:
            for record in self._by_id.values():
                if record.workspace == workspace and record.name == name:
                    return record
            return None

    def remove(self, sandbox_id: str) -> None:
        with self.lock:
            self._by_id.pop(sandbox_id, None)

    def all(self, workspace: str | None = None) -> list[SandboxRecord]:
        with self.lock:
            return [
                record
                for record in self._by_id.values()
                if workspace is None or record.workspace == workspace
            ]


# The gRPC service.


def _workspace(
    scope: datamodel_pb2.WorkspaceSelector, context: grpc.ServicerContext
) -> str | None:
    """The selected workspace; None for all workspaces."""
    if scope.WhichOneof("selection") == "all_workspaces":
        return None
    if not scope.workspace:
        context.abort(
            grpc.StatusCode.INVALID_ARGUMENT, "workspace_scope.workspace is required"
        )
    return scope.workspace


def _matches(labels: Mapping[str, str], selector: str) -> bool:
    for term in filter(None, (part.strip() for part in selector.split(","))):
        key, sep, value = term.partition("=")
        if sep:
            if labels.get(key.strip()) != value.strip():
                return False
        elif key.strip() not in labels:
            return False
    return True


def _abort_for(context: grpc.ServicerContext, error: DriverError) -> None:
    if isinstance(error, PodmanUnavailableError):
        code = grpc.StatusCode.UNAVAILABLE
    elif isinstance(error, ImageUnavailableError):
        code = grpc.StatusCode.FAILED_PRECONDITION
    else:
        code = grpc.StatusCode.INTERNAL
    context.abort(code, str(error))


_END = object()


class OpenShellService(openshell_pb2_grpc.OpenShellServicer):
    """The subset of ``openshell.v1.OpenShell`` the reference implements."""

    def __init__(
        self,
        store: SandboxStore,
        driver: SandboxDriver,
        *,
        heartbeat_interval: float = HEARTBEAT_INTERVAL_SECS,
    ) -> None:
        self.store = store
        self.driver = driver
        self.heartbeat_interval = heartbeat_interval

    def Health(self, request, context):  # noqa: N802 - gRPC method names
        return openshell_pb2.HealthResponse(
            status=openshell_pb2.SERVICE_STATUS_HEALTHY, version=__version__
        )

    def CreateSandbox(self, request, context):  # noqa: N802
        workspace = _workspace(request.workspace_scope, context)
        if workspace is None:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "CreateSandbox needs one workspace, not all workspaces",
            )
        if request.workload_template:
            context.abort(
                grpc.StatusCode.UNIMPLEMENTED,
                "workload templates are not implemented by the reference gateway",
            )
        name = request.name or f"sandbox-{uuid.uuid4().hex[:8]}"
        if not _NAME.match(name):
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"sandbox name {name!r} is not a DNS label: use at most 63 "
                "lowercase letters, digits and '-'",
            )

        # Limitation: of the spec only the template's image, labels,
        # environment and user_namespaces and the spec's environment are used;
        # command, policy, providers and resources are accepted and ignored.
        spec = request.spec
        environment = dict(spec.template.environment)
        environment.update(spec.environment)
        container_labels = dict(spec.template.labels)
        container_labels.update(request.labels)
        record = SandboxRecord(
            id=str(uuid.uuid4()),
            name=name,
            workspace=workspace,
            labels=dict(request.labels),
            spec=spec,
            created_at=_now(),
            container=container_name(name),
        )
        try:
            self.store.add(record)
        except SandboxExists:
            context.abort(
                grpc.StatusCode.ALREADY_EXISTS,
                f"sandbox {name} already exists in workspace {workspace}",
            )

        try:
            self.driver.create_container(
                SandboxRequest(
                    id=record.id,
                    name=name,
                    workspace=workspace,
                    labels=container_labels,
                    environment=environment,
                    image=spec.template.image or None,
                    user_namespaces=spec.template.user_namespaces,
                )
            )
        except DriverError as error:
            self.store.remove(record.id)
            event("error", "sandbox_create_failed", sandbox=name, error=str(error))
            _abort_for(context, error)
        event(
            "info",
            "sandbox_created",
            sandbox_id=record.id,
            sandbox=name,
            workspace=workspace,
        )
        with self.store.lock:
            return openshell_pb2.SandboxResponse(sandbox=record.to_proto())

    def _refresh(self, record: SandboxRecord) -> None:
        """Bring a sandbox without a live session up to date with its container."""
        with self.store.lock:
            if record.session_id is not None or record.phase in (
                openshell_pb2.SANDBOX_PHASE_STOPPED,
                openshell_pb2.SANDBOX_PHASE_DELETING,
            ):
                return
        try:
            state = self.driver.container_state(record.container)
        except DriverError as error:
            event("warn", "container_inspect_failed", error=str(error))
            return
        last_line = ""
        if state is not None and not state.running and state.status == "exited":
            last_line = self.driver.last_log_line(record.container)
        with self.store.lock:
            if record.session_id is not None:
                return
            if state is None:
                record.phase = openshell_pb2.SANDBOX_PHASE_ERROR
                record.set_condition(
                    CONDITION_CONTAINER,
                    "False",
                    "Missing",
                    f"container {record.container} no longer exists",
                )
            elif state.status == "exited":
                record.phase = openshell_pb2.SANDBOX_PHASE_ERROR
                record.exit_code = state.exit_code
                detail = f"exit_code={state.exit_code}"
                if last_line:
                    detail += f" last_log={last_line}"
                elif state.error:
                    detail += f" error={state.error}"
                record.set_condition(CONDITION_CONTAINER, "False", "Exited", detail)
            elif state.running:
                record.phase = openshell_pb2.SANDBOX_PHASE_PROVISIONING
                record.set_condition(CONDITION_CONTAINER, "True", "Running", "")

    def _lookup(self, request, context) -> SandboxRecord:
        workspace = _workspace(request.workspace_scope, context)
        record = None
        if workspace is None:
            matches = [r for r in self.store.all() if r.name == request.name]
            record = matches[0] if len(matches) == 1 else None
        else:
            record = self.store.find(workspace, request.name)
        if record is None:
            context.abort(
                grpc.StatusCode.NOT_FOUND, f"sandbox {request.name} not found"
            )
        return record

    def GetSandbox(self, request, context):  # noqa: N802
        record = self._lookup(request, context)
        self._refresh(record)
        with self.store.lock:
            return openshell_pb2.SandboxResponse(sandbox=record.to_proto())

    def ListSandboxes(self, request, context):  # noqa: N802
        workspace = _workspace(request.workspace_scope, context)
        records = [
            record
            for record in self.store.all(workspace)
            if _matches(record.labels, request.label_selector)
        ]
        for record in records:
            self._refresh(record)
        with self.store.lock:
            records.sort(key=lambda record: (record.created_at, record.name))
            return openshell_pb2.ListSandboxesResponse(
                sandboxes=[record.to_proto() for record in records]
            )

    def DeleteSandbox(self, request, context):  # noqa: N802
        workspace = _workspace(request.workspace_scope, context)
        record = (
            self.store.find(workspace, request.name) if workspace is not None else None
        )
        if record is None:
            if request.allow_missing:
                return openshell_pb2.DeleteSandboxResponse(
                    outcome=openshell_pb2.DELETION_OUTCOME_ALREADY_ABSENT
                )
            context.abort(
                grpc.StatusCode.NOT_FOUND, f"sandbox {request.name} not found"
            )
        with self.store.lock:
            record.phase = openshell_pb2.SANDBOX_PHASE_DELETING
        try:
            self.driver.delete_container(record.container)
        except DriverError as error:
            _abort_for(context, error)
        self.store.remove(record.id)
        event("info", "sandbox_deleted", sandbox_id=record.id, sandbox=record.name)
        return openshell_pb2.DeleteSandboxResponse(
            outcome=openshell_pb2.DELETION_OUTCOME_COMPLETED, sandbox_id=record.id
        )

    def StopSandbox(self, request, context):  # noqa: N802
        record = self._lookup(request, context)
        with self.store.lock:
            record.phase = openshell_pb2.SANDBOX_PHASE_STOPPING
        try:
            self.driver.stop_container(record.container)
        except DriverError as error:
            _abort_for(context, error)
        with self.store.lock:
            record.phase = openshell_pb2.SANDBOX_PHASE_STOPPED
            return openshell_pb2.SandboxResponse(sandbox=record.to_proto())

    def StartSandbox(self, request, context):  # noqa: N802
        record = self._lookup(request, context)
        try:
            self.driver.start_container(record.container)
        except DriverError as error:
            _abort_for(context, error)
        with self.store.lock:
            record.phase = openshell_pb2.SANDBOX_PHASE_PROVISIONING
            record.exit_code = None
            return openshell_pb2.SandboxResponse(sandbox=record.to_proto())

    # The supervisor session.

    @staticmethod
    def _rejected(reason: str) -> openshell_pb2.GatewayMessage:
        event("warn", "session_rejected", reason=reason)
        return openshell_pb2.GatewayMessage(
            session_rejected=openshell_pb2.SessionRejected(reason=reason)
        )

    def ConnectSupervisor(self, request_iterator, context):  # noqa: N802
        try:
            first = next(request_iterator)
        except (StopIteration, grpc.RpcError):
            return
        if first.WhichOneof("payload") != "hello":
            yield self._rejected("the first message must be SupervisorHello")
            return
        hello = first.hello
        record = self.store.get(hello.sandbox_id)
        if record is None:
            yield self._rejected(f"unknown sandbox_id {hello.sandbox_id!r}")
            return

        auth = context.auth_context()
        subject = peer_subject(auth)
        session_id = str(uuid.uuid4())
        with self.store.lock:
            record.session_id = session_id
            record.instance_id = hello.instance_id
            record.phase = openshell_pb2.SANDBOX_PHASE_READY
            record.exit_code = None
            record.set_condition(
                CONDITION_SUPERVISOR,
                "True",
                "SessionAccepted",
                f"peer_subject={subject}",
            )
            record.set_condition(CONDITION_CONTAINER, "True", "Running", "")
        event(
            "info",
            "supervisor_connected",
            sandbox_id=record.id,
            sandbox=record.name,
            session_id=session_id,
            instance_id=hello.instance_id,
            peer_subject=subject,
            transport=_transport(auth),
        )

        ended = threading.Event()

        def end(reason: str) -> None:
            if ended.is_set():
                return
            ended.set()
            self._session_ended(record, session_id, subject, reason)

        context.add_callback(lambda: end("stream closed"))
        inbox: queue.Queue[object] = queue.Queue()

        def read() -> None:
            try:
                for message in request_iterator:
                    inbox.put(message)
            except grpc.RpcError:
                pass
            except Exception as error:  # grpc surfaces cancellation variously
                event("debug", "session_read_ended", error=type(error).__name__)
            inbox.put(_END)

        threading.Thread(
            target=read, name=f"session-{session_id[:8]}", daemon=True
        ).start()
        yield openshell_pb2.GatewayMessage(
            session_accepted=openshell_pb2.SessionAccepted(
                session_id=session_id,
                heartbeat_interval=duration_pb2.Duration(
                    seconds=int(self.heartbeat_interval),
                    nanos=int((self.heartbeat_interval % 1) * 1e9),
                ),
            )
        )
        yield from self._heartbeats(inbox, end)

    def _heartbeats(
        self, inbox: queue.Queue[object], end: Callable[[str], None]
    ) -> Iterator[openshell_pb2.GatewayMessage]:
        """Answer each heartbeat; end the session when they stop coming."""
        timeout = self.heartbeat_interval * HEARTBEAT_MISSES
        while True:
            try:
                message = inbox.get(timeout=timeout)
            except queue.Empty:
                end(f"no heartbeat for {timeout:g}s")
                return
            if message is _END:
                end("stream closed")
                return
            if message.WhichOneof("payload") == "heartbeat":
                yield openshell_pb2.GatewayMessage(
                    heartbeat=openshell_pb2.GatewayHeartbeat()
                )

    def _session_ended(
        self, record: SandboxRecord, session_id: str, subject: str, reason: str
    ) -> None:
        with self.store.lock:
            if record.session_id != session_id:
                return
            record.session_id = None
            if record.phase == openshell_pb2.SANDBOX_PHASE_READY:
                record.phase = openshell_pb2.SANDBOX_PHASE_PROVISIONING
            record.set_condition(
                CONDITION_SUPERVISOR,
                "False",
                "SessionEnded",
                f"peer_subject={subject}",
            )
        event(
            "info",
            "supervisor_disconnected",
            sandbox_id=record.id,
            session_id=session_id,
            reason=reason,
        )


# The gateway process.


def _grpc_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _check_port_free(host: str, port: int, what: str) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        # SO_REUSEADDR, as grpcio sets it: only a listening socket is a conflict,
        # not connections of an earlier run lingering in TIME_WAIT.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
    except OSError as error:
        raise ListenError(
            f"{what} port {port} on {host} is already in use "
            f"({error.strerror or error}); stop whatever listens there or "
            f"choose another port"
        ) from None
    finally:
        probe.close()


class Gateway:
    """The gRPC server, the health listener and the bridge relay together."""

    def __init__(
        self,
        *,
        bind_address: str,
        port: int,
        driver: SandboxDriver,
        tls: ServerTLSMaterial | None,
        health_address: str | None = None,
        health_port: int = 0,
        bridge_address: str | None = None,
        heartbeat_interval: float = HEARTBEAT_INTERVAL_SECS,
        max_workers: int = 64,
    ) -> None:
        self.bind_address = bind_address
        self.port = port
        self.store = SandboxStore()
        self.service = OpenShellService(
            self.store, driver, heartbeat_interval=heartbeat_interval
        )
        self._tls = tls
        self._ready = threading.Event()
        self._server = grpc.server(
            futures.ThreadPoolExecutor(
                max_workers=max_workers, thread_name_prefix="grpc"
            ),
            options=[("grpc.so_reuseport", 0)],
        )
        openshell_pb2_grpc.add_OpenShellServicer_to_server(self.service, self._server)
        self._health = (
            HealthListener(
                health_address or bind_address,
                health_port,
                self._ready.is_set,
                __version__,
            )
            if health_port
            else None
        )
        self._relay = (
            BridgeRelay(bridge_address, port, (bind_address, port))
            if bridge_address
            else None
        )

    def adopt(self, containers: Sequence[ManagedContainer]) -> None:
        """Track sandboxes whose containers an earlier run of the gateway left."""
        for container in containers:
            record = SandboxRecord(
                id=container.sandbox_id,
                name=container.sandbox_name,
                workspace=container.workspace,
                labels=dict(container.labels),
                spec=openshell_pb2.SandboxSpec(),
                created_at=_now(),
                container=container.name,
            )
            try:
                self.store.add(record)
            except SandboxExists:
                continue
            event(
                "info",
                "sandbox_adopted",
                sandbox_id=record.id,
                sandbox=record.name,
                workspace=record.workspace,
                container=record.container,
            )

    def bind(self) -> None:
        """Bind every listener; ``ListenError`` names the one that cannot.

        Limitation: grpcio does not hand failed TLS handshakes to Python, so
        the gateway cannot log a refused client; the supervisor reports them.
        """
        _check_port_free(self.bind_address, self.port, "gRPC")
        address = _grpc_address(self.bind_address, self.port)
        try:
            if self._tls is None:
                bound = self._server.add_insecure_port(address)
            else:
                credentials = grpc.ssl_server_credentials(
                    [(self._tls.private_key, self._tls.cert_chain)],
                    root_certificates=self._tls.client_ca,
                    require_client_auth=self._tls.client_ca is not None,
                )
                bound = self._server.add_secure_port(address, credentials)
        except RuntimeError:
            bound = 0
        if not bound:
            raise ListenError(
                f"cannot listen on {address} for gRPC; stop whatever listens there "
                "or choose another --port"
            )
        if self._health is not None:
            self._health.bind()
        if self._relay is not None:
            self._relay.bind()

    def start(self) -> None:
        self._server.start()
        if self._relay is not None:
            self._relay.start()
        if self._health is not None:
            self._health.start()
        if self._tls is None:
            mode = "plaintext"
        elif self._tls.client_ca is not None:
            mode = "mtls"
        else:
            mode = "tls"
        event(
            "info",
            "grpc_listening",
            address=_grpc_address(self.bind_address, self.port),
            tls=mode,
        )
        self._ready.set()
        event("info", "gateway_ready", version=__version__)

    def stop(self) -> None:
        """Stop every listener, within a few seconds."""
        self._ready.clear()
        stopped = self._server.stop(STOP_GRACE_SECS)
        if self._relay is not None:
            self._relay.close()
        if self._health is not None:
            self._health.close()
        stopped.wait(STOP_GRACE_SECS + 1)
        event("info", "gateway_stopped")
