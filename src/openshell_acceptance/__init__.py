"""The acceptance suite's library: everything the behave steps call.

It knows nothing about behave; the steps and hooks are thin callers of it.
"""

from . import evidence, files, inside, matchers, pki
from .container import CLIENT_TLS_DIR, GUEST_TLS_PATHS, ContainerView, Mount
from .deployment import Deployment, Refusal, Sandbox
from .errors import (
    AcceptanceError,
    GatewayError,
    GatewayExited,
    GatewayNotHealthy,
    ParameterError,
    PreflightError,
    SandboxError,
    SandboxNotReady,
)
from .evidence import Evidence
from .gateway import DRIVER_FIELD_NAMES, GUEST_TLS_KEYS
from .run import SuiteRun

__all__ = [
    "CLIENT_TLS_DIR",
    "DRIVER_FIELD_NAMES",
    "GUEST_TLS_KEYS",
    "GUEST_TLS_PATHS",
    "AcceptanceError",
    "ContainerView",
    "Deployment",
    "Evidence",
    "GatewayError",
    "GatewayExited",
    "GatewayNotHealthy",
    "Mount",
    "ParameterError",
    "PreflightError",
    "Refusal",
    "Sandbox",
    "SandboxError",
    "SandboxNotReady",
    "SuiteRun",
    "evidence",
    "files",
    "inside",
    "matchers",
    "pki",
]
