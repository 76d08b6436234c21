"""A Docker Engine, and the images no registry gives, for the compose test.

The engine: Debian's ``docker.io`` (installed with apt under ``CI=true`` or ``UCI_COMPOSE_INSTALL=1``
when missing, with ``docker-compose`` and ``debootstrap``), its daemon started here when none answers
(``--iptables=false``: containers reach each other on compose's network, the host reaches them, and
builds reach the package registries with ``--network host``) and stopped at the end.

The images: no image registry is reachable, so ``FROM apache/airflow``, ``postgres``, ``redis`` and
Azurite's image cannot be pulled. A Debian bookworm root file system (``debootstrap``) is imported
as the base, and four stand-ins are built on it from ``tests/compose/images`` (each Dockerfile says
what it differs from the official image in); the project's own ``docker/Dockerfile`` is then built
on the Airflow stand-in through its ``BASE_IMAGE`` argument. The engine keeps every layer, so a
rerun rebuilds only what changed (the requirements layer only when uv.lock does).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.services import unavailable

ROOT = Path(__file__).resolve().parents[2]
IMAGES = Path(__file__).resolve().parent / "images"
DEBIAN_IMAGE = "uci-compose/debian:bookworm"
#: stand-in name -> (its Dockerfile under images/, the tag the override file names)
STAND_INS = {
    "airflow": "uci-compose/airflow:3.3.2-python3.11",
    "postgres": "uci-compose/postgres:15",
    "redis": "uci-compose/redis:7.0",
    "azurite": "uci-compose/azurite:3.37.0",
}
PROJECT_IMAGE = "airflow-provider-uci:local"
AZURITE_VERSION = "3.37.0"
#: what the Airflow stand-in leaves out of uv.lock's set: the test tools of the dev group
NOT_IN_IMAGE = ("pytest", "pytest-timeout", "pytest-asyncio", "schemathesis", "selenium")
PACKAGES = ("docker.io", "docker-compose", "debootstrap")


@dataclass
class Engine:
    docker: str
    compose: str
    workdir: Path

    def run(
        self, *args: str, timeout: float = 1800, check: bool = True, **kwargs: object
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.docker, *args], capture_output=True, text=True, timeout=timeout, **kwargs
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args[:3])} failed ({result.returncode}):\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def has_image(self, tag: str) -> bool:
        return self.run("image", "inspect", tag, check=False).returncode == 0


def answers(docker: str) -> bool:
    try:
        return subprocess.run([docker, "info"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def may_install() -> bool:
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("UCI_COMPOSE_INSTALL") == "1"


def install_packages() -> None:
    """apt-get install the engine, docker-compose and debootstrap (root, Debian), or say why not."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        unavailable(
            f"the Docker Engine is missing and cannot be installed here (needs root and apt-get): "
            f"apt-get install {' '.join(PACKAGES)}"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
    ):
        result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
        if result.returncode != 0:
            unavailable(f"{' '.join(command)} failed: {result.stderr[-2000:]}")


def docker_client() -> str | None:
    """The client beside the daemon when there is one (same release), else the first on PATH."""
    daemon = shutil.which("dockerd")
    for candidate in [str(Path(daemon).parent.parent / "bin" / "docker")] if daemon else []:
        if Path(candidate).exists():
            return candidate
    return shutil.which("docker")


@contextmanager
def docker_engine(workdir: Path) -> Iterator[Engine]:
    """An answering Docker Engine and docker-compose; a daemon started here is stopped afterwards."""
    if not all(shutil.which(tool) for tool in ("dockerd", "docker-compose", "debootstrap")) and may_install():
        install_packages()
    docker, compose = docker_client(), shutil.which("docker-compose")
    if docker is None or compose is None:
        unavailable(
            "the Docker Engine or docker-compose is not installed (apt-get install docker.io "
            "docker-compose debootstrap; .ci/run does, and so does this test under CI=true)"
        )
    daemon = None
    if not answers(docker):
        daemon = start_daemon(workdir)
    try:
        yield Engine(docker=docker, compose=compose, workdir=workdir)
    finally:
        if daemon is not None:
            daemon.terminate()
            try:
                daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()


def start_daemon(workdir: Path) -> subprocess.Popen:
    dockerd = shutil.which("dockerd")
    if dockerd is None or os.geteuid() != 0:
        unavailable("no Docker daemon answers, and dockerd cannot be started here (needs root)")
    problems = []
    for driver in ("overlay2", "vfs"):
        log = workdir / f"dockerd-{driver}.log"
        with log.open("wb") as out:
            daemon = subprocess.Popen(
                [dockerd, "--iptables=false", f"--storage-driver={driver}"],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and daemon.poll() is None:
            if answers(docker_client() or "docker"):
                return daemon
            time.sleep(1)
        daemon.terminate()
        daemon.wait(timeout=30)
        problems.append(f"{driver}: {log.read_text(errors='replace')[-1500:]}")
    unavailable("dockerd did not start:\n" + "\n".join(problems))
    raise AssertionError("unreachable")


def build_debian(engine: Engine) -> None:
    """Import a Debian bookworm root file system as DEBIAN_IMAGE, unless the engine has it."""
    if engine.has_image(DEBIAN_IMAGE):
        return
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        unavailable("debootstrap is not installed: it makes the base image no registry can give")
    with tempfile.TemporaryDirectory(prefix="uci-rootfs-", dir=engine.workdir) as rootfs:
        made = subprocess.run(
            [debootstrap, "--variant=minbase", "bookworm", rootfs, "http://deb.debian.org/debian"],
            capture_output=True,
            text=True,
            timeout=1200,
        )
        assert made.returncode == 0, f"debootstrap failed:\n{made.stdout[-2000:]}\n{made.stderr[-2000:]}"
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        engine.run("import", "-", DEBIAN_IMAGE, stdin=tar.stdout)
        assert tar.wait() == 0


def requirements() -> str:
    """uv.lock's packages for the image: the project's dependencies, and its dev group but the test tools."""
    uv = shutil.which("uv")
    if uv is None:
        unavailable("uv is not installed: it exports uv.lock's packages for the Airflow stand-in")
    prune = [argument for name in NOT_IN_IMAGE for argument in ("--prune", name)]
    return subprocess.run(
        [uv, "export", "--locked", "--no-emit-project", "--quiet", *prune],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout


def uv_version() -> str:
    found = re.search(
        r"\d+\.\d+\.\d+",
        subprocess.run(["uv", "--version"], capture_output=True, text=True, check=True).stdout,
    )
    assert found, "uv --version"
    return found.group(0)


def ca_bundle() -> Path:
    """The host's CA bundle: a build reaches PyPI and npm only trusting what the host trusts."""
    for path in (Path("/etc/ssl/certs/ca-certificates.crt"), Path("/etc/pki/tls/certs/ca-bundle.crt")):
        if path.is_file():
            return path
    import certifi

    return Path(certifi.where())


def build_images(engine: Engine) -> dict[str, float]:
    """Build (or find cached) every stand-in and the project's image; seconds each took."""
    took: dict[str, float] = {}
    started = time.monotonic()
    build_debian(engine)
    took["debian"] = time.monotonic() - started
    with tempfile.TemporaryDirectory(prefix="uci-images-", dir=engine.workdir) as context:
        for path in IMAGES.iterdir():
            shutil.copy2(path, context)
        shutil.copyfile(ca_bundle(), Path(context) / "build-ca.crt")
        (Path(context) / "requirements.txt").write_text(requirements())
        for name, tag in STAND_INS.items():
            started = time.monotonic()
            engine.run(
                "build",
                "--network",
                "host",
                "-f",
                str(Path(context) / f"{name}.Dockerfile"),
                "--build-arg",
                f"DEBIAN_IMAGE={DEBIAN_IMAGE}",
                "--build-arg",
                f"UV_VERSION={uv_version()}",
                "--build-arg",
                f"AZURITE_VERSION={AZURITE_VERSION}",
                "-t",
                tag,
                context,
            )
            took[name] = time.monotonic() - started
    started = time.monotonic()
    engine.run(
        "build",
        "--network",
        "host",
        "-f",
        "docker/Dockerfile",
        "--build-arg",
        f"BASE_IMAGE={STAND_INS['airflow']}",
        "-t",
        PROJECT_IMAGE,
        ".",
        cwd=ROOT,
    )
    took["project"] = time.monotonic() - started
    return took
