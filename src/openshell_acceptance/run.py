"""What one run of the suite shares across scenarios, and how it is torn down."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

from .deployment import Deployment
from .image import ensure_sandbox_image
from .podman import (
    MANAGED_LABEL,
    NETWORK_PREFIX,
    OWNER_LABEL,
    RUN_LABEL,
    PodmanService,
    owner_id,
)
from .targets import Target, select_target


class SuiteRun:
    """The Podman service, sandbox image, network and target of one run."""

    def __init__(
        self,
        userdata: Mapping[str, str],
        *,
        log: Callable[[str], None] = print,
    ) -> None:
        self.userdata = dict(userdata)
        self.log = log
        self.id = uuid.uuid4().hex
        self.root = Path(tempfile.mkdtemp(prefix="openshell-acceptance-"))
        self.network_name = f"{NETWORK_PREFIX}{self.id[:12]}"
        self.podman: PodmanService | None = None
        self.target: Target | None = None
        self._scenarios = 0

    def start(self) -> SuiteRun:
        """Bring up Podman, the image and the network; raise PreflightError if not."""
        target = select_target(self.userdata)
        self.podman = PodmanService(self.root / "podman", log=self.log).start()
        self.podman.remove_leftovers(current_run=self.id)
        if target.sandbox_image is None:
            target = target.with_sandbox_image(
                ensure_sandbox_image(self.podman, log=self.log)
            )
        for image in target.images:
            self.podman.ensure_image_present(image)
        self.target = target
        self.podman.create_network(
            self.network_name,
            labels={MANAGED_LABEL: "true", RUN_LABEL: self.id, OWNER_LABEL: owner_id()},
        )
        return self

    def deployment(self) -> Deployment:
        """A fresh working directory and deployment for the next scenario."""
        assert self.podman is not None and self.target is not None
        self._scenarios += 1
        workdir = self.root / f"scenario-{self._scenarios:03d}"
        workdir.mkdir(mode=0o700)
        return Deployment(
            target=self.target,
            podman=self.podman,
            workdir=workdir,
            network_name=self.network_name,
            run_id=self.id,
        )

    def close(self) -> None:
        """Remove everything this run created, whatever state it is in."""
        try:
            if self.podman is not None:
                self.podman.remove_containers(label=f"{RUN_LABEL}={self.id}")
                self.podman.remove_containers(network=self.network_name)
                self.podman.remove_network(self.network_name)
                self.podman.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
