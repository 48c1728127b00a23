"""The deployment files fit together, without a cluster or a container engine.

``contrib/kubernetes/archiver.yaml``: the ConfigMap's TOML passes the archiver's own loader
with the environment the Deployment gives the container (Secret values resolved); every
Secret and ConfigMap reference resolves inside the file; the probes ask the port
``[metrics] listen`` uses, on paths the daemon serves (``archiver/endpoints.py``); the pod
runs as the image's user and can write wherever the configuration writes.

``contrib/compose/compose.yaml``: the replicas' TOML passes the loader with the environment
of their env files; its database and vendor URLs name services of the file with their
settings; the replicas share one evidence volume, each with a host name of its own.
``tests/system/replicas_compose.sh`` runs that stack for real.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from archiver.config import Config, parse_config
from archiver.endpoints import build_app
from archiver.health import Readiness
from archiver.metrics import PrometheusObserver
from archiver.sources.devrev import DevRevSettings
from archiver_sim import service as simulator_service

ROOT = Path(__file__).parents[2]
KUBERNETES = ROOT / "contrib" / "kubernetes" / "archiver.yaml"
COMPOSE = ROOT / "contrib" / "compose" / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
REPLICAS = ("archiver-1", "archiver-2", "archiver-3")

Document = dict[str, Any]


def dockerfile_env(name: str) -> str:
    found = re.search(rf"\b{name}=(\S+)", DOCKERFILE.read_text())
    assert found, f"the Dockerfile sets no {name}"
    return found[1]


def dockerfile_uid() -> int:
    found = re.search(r"useradd --uid (\d+)", DOCKERFILE.read_text())
    assert found, "the Dockerfile creates no user with a fixed UID"
    return int(found[1])


def served_paths() -> set[str]:
    app = build_app(PrometheusObserver(), Readiness((), interval_seconds=60, max_missed_passes=3))
    return {route.resource.canonical for route in app.router.routes() if route.resource}


# --- Kubernetes ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def documents() -> list[Document]:
    loaded = [document for document in yaml.safe_load_all(KUBERNETES.read_text()) if document]
    assert all(isinstance(document, dict) for document in loaded)
    return loaded


def of_kind(documents: list[Document], kind: str) -> dict[str, Document]:
    return {doc["metadata"]["name"]: doc for doc in documents if doc["kind"] == kind}


def secret_data(secret: Document) -> dict[str, str]:
    assert "data" not in secret, "placeholders belong in stringData, readable as they are"
    data: dict[str, str] = secret["stringData"]
    return data


@pytest.fixture(scope="module")
def pod(documents: list[Document]) -> Document:
    (deployment,) = of_kind(documents, "Deployment").values()
    spec: Document = deployment["spec"]["template"]["spec"]
    return spec


@pytest.fixture(scope="module")
def container(pod: Document) -> Document:
    (archiver,) = pod["containers"]
    assert isinstance(archiver, dict)
    return archiver


def container_env(documents: list[Document], container: Document) -> dict[str, str]:
    """The container's environment, every reference resolved in the file (or failing)."""
    secrets, config_maps = of_kind(documents, "Secret"), of_kind(documents, "ConfigMap")
    environ: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            environ[item["name"]] = str(item["value"])
            continue
        source = item["valueFrom"]
        if "secretKeyRef" in source:
            reference, holders = source["secretKeyRef"], secrets
            values = {name: secret_data(doc) for name, doc in holders.items()}
        else:
            reference, holders = source["configMapKeyRef"], config_maps
            values = {name: doc["data"] for name, doc in holders.items()}
        assert reference["name"] in values, f"{item['name']}: no {reference['name']} in the file"
        assert reference["key"] in values[reference["name"]], f"{item['name']}: no such key"
        environ[item["name"]] = values[reference["name"]][reference["key"]]
    return environ


def mounted_files(
    documents: list[Document], pod: Document, container: Document
) -> Iterator[tuple[PurePosixPath, str]]:
    """(path in the container, text) of every ConfigMap file the container mounts."""
    config_maps = of_kind(documents, "ConfigMap")
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    for mount in container["volumeMounts"]:
        assert mount["name"] in volumes, f"no volume {mount['name']}"
        volume = volumes[mount["name"]]
        if "configMap" not in volume:
            continue
        data = config_maps[volume["configMap"]["name"]]["data"]
        items = volume["configMap"].get("items") or [{"key": key, "path": key} for key in data]
        for item in items:
            assert item["key"] in data, f"ConfigMap {volume['configMap']['name']}: no {item['key']}"
            yield PurePosixPath(mount["mountPath"]) / item["path"], data[item["key"]]


@pytest.fixture(scope="module")
def kubernetes_config(documents: list[Document], pod: Document, container: Document) -> Config:
    files = dict(mounted_files(documents, pod, container))
    path = PurePosixPath(dockerfile_env("ARCHIVER_CONFIG"))
    assert path in files, f"nothing mounted at the image's ARCHIVER_CONFIG, {path}"
    return parse_config(
        tomllib.loads(files[path]),
        path=f"{KUBERNETES.name}: ConfigMap",
        environ=container_env(documents, container),
    )


def test_the_configmap_is_a_replica_configuration(kubernetes_config: Config) -> None:
    assert kubernetes_config.state.url.startswith("postgresql://")
    assert kubernetes_config.state.replica is None, "each pod is named by its host name"
    assert kubernetes_config.state.password.reveal()
    assert kubernetes_config.store.url.startswith("s3://"), "one store for every pod"
    assert kubernetes_config.sources, "no source configured"


def test_every_secret_the_configuration_names_comes_from_the_secret(
    documents: list[Document], container: Document, kubernetes_config: Config
) -> None:
    from_secrets = {
        item["name"] for item in container["env"] if "secretKeyRef" in item.get("valueFrom", {})
    }
    named = {settings.token_env for settings in kubernetes_config.sources.values()}
    named.add(kubernetes_config.state.password_env)
    assert named <= from_secrets
    environ = container_env(documents, container)
    for settings in kubernetes_config.sources.values():
        assert settings.token.reveal() == environ[str(settings.token_env)]
    (secret,) = of_kind(documents, "Secret").values()
    used = {
        item["valueFrom"]["secretKeyRef"]["key"] for item in container["env"] if "valueFrom" in item
    }
    assert used == set(secret_data(secret)), "a Secret key nobody reads, or one missing"


def test_the_probes_ask_the_metrics_listener_on_served_paths(
    container: Document, kubernetes_config: Config
) -> None:
    assert kubernetes_config.metrics is not None, "[metrics] listen is needed for the probes"
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    probes = {name: container[name]["httpGet"] for name in ("livenessProbe", "readinessProbe")}
    probes["startupProbe"] = container.get("startupProbe", {}).get(
        "httpGet", probes["livenessProbe"]
    )
    for name, probe in probes.items():
        port = ports.get(probe["port"], probe["port"])
        assert port == kubernetes_config.metrics.port, f"{name} asks port {port}"
    assert kubernetes_config.metrics.host in ("0.0.0.0", "::"), "the kubelet cannot reach it"
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert {probe["path"] for probe in probes.values()} <= served_paths()


def test_the_pod_runs_as_the_images_user_on_a_read_only_root(
    pod: Document, container: Document, kubernetes_config: Config
) -> None:
    uid = dockerfile_uid()
    assert pod["securityContext"]["runAsUser"] == uid
    assert pod["securityContext"]["runAsGroup"] == uid
    assert pod["securityContext"]["runAsNonRoot"] is True
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    writable = [
        PurePosixPath(mount["mountPath"])
        for mount in container["volumeMounts"]
        if not mount.get("readOnly")
    ]
    spool = kubernetes_config.store.spool_dir
    for needed in ("/tmp", dockerfile_workdir(), *([spool] if spool else [])):
        assert any(PurePosixPath(needed).is_relative_to(path) for path in writable), needed


def dockerfile_workdir() -> str:
    found = re.findall(r"^WORKDIR (\S+)", DOCKERFILE.read_text(), flags=re.MULTILINE)
    return str(found[-1])


def test_the_deployment_runs_three_replicas_that_stop_in_time(documents: list[Document]) -> None:
    (deployment,) = of_kind(documents, "Deployment").values()
    assert deployment["spec"]["replicas"] == 3
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    for budget in of_kind(documents, "PodDisruptionBudget").values():
        assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    # engine.shutdown_grace_seconds (30) and some room to exit.
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 30


# --- Compose ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> Document:
    loaded = yaml.safe_load(COMPOSE.read_text())  # resolves the x-archiver anchor (<<)
    assert isinstance(loaded, dict)
    return loaded


def env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as Compose reads an env_file (no quotes, no interpolation here)."""
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def service_env(service: Document) -> dict[str, str]:
    environ: dict[str, str] = {}
    for name in service.get("env_file", []):
        environ |= env_file(COMPOSE.parent / name)
    return environ | {key: str(value) for key, value in service.get("environment", {}).items()}


def bind_mounts(service: Document) -> dict[str, tuple[str, str]]:
    """Container path -> (source, options) of a service's volumes (short syntax)."""
    mounts = {}
    for volume in service["volumes"]:
        source, target, *options = volume.split(":")
        mounts[target] = (source, ",".join(options))
    return mounts


def replica_config(compose: Document, name: str) -> Config:
    service = compose["services"][name]
    source, options = bind_mounts(service)[dockerfile_env("ARCHIVER_CONFIG")]
    assert options == "ro"
    path = COMPOSE.parent / source
    return parse_config(
        tomllib.loads(path.read_text()), path=str(path), environ=service_env(service)
    )


def test_the_replicas_are_built_from_the_repository_and_named_apart(compose: Document) -> None:
    services = compose["services"]
    assert set(REPLICAS) <= set(services)
    hostnames = {services[name]["hostname"] for name in REPLICAS}
    assert len(hostnames) == len(REPLICAS), "the replica names ([state] replica) must differ"
    for name in REPLICAS:
        build = services[name]["build"]
        assert (COMPOSE.parent / build["context"]).resolve() == ROOT
        assert build.get("dockerfile", "Dockerfile") == "Dockerfile"
        assert replica_config(compose, name).state.replica is None, "named by their host names"


def test_the_replicas_share_one_evidence_volume_and_the_database(compose: Document) -> None:
    services = compose["services"]
    data = {bind_mounts(services[name])[dockerfile_workdir()][0] for name in REPLICAS}
    assert len(data) == 1 and data <= set(compose["volumes"])
    config = replica_config(compose, REPLICAS[0])
    assert config.store.url.startswith(f"file://{dockerfile_workdir()}/")
    state = urlsplit(config.state.url)
    database = services[str(state.hostname)]
    database_env = service_env(database)
    assert state.username == database_env["POSTGRES_USER"]
    assert state.path == f"/{database_env['POSTGRES_DB']}"
    assert state.port == 5432
    password_env = str(config.state.password_env)
    assert config.state.password.reveal() == database_env["POSTGRES_PASSWORD"]
    for name in REPLICAS:
        assert replica_config(compose, name).state.password_env == password_env
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert (COMPOSE.parent / database["build"]["context"] / "Dockerfile").is_file()


def test_the_replicas_reach_the_simulators_with_their_tokens(compose: Document) -> None:
    simulators = compose["services"]["simulators"]
    command = simulators["command"]
    public_host = command[command.index("--public-host") + 1]
    assert public_host == "simulators", "the service's name is the host the others reach"
    first_port = int(command[command.index("--port") + 1]) if "--port" in command else None
    ports = simulator_service.api_ports(first_port or simulator_service.FIRST_PORT)
    config = replica_config(compose, REPLICAS[0])
    assert set(config.sources) == set(ports)
    for vendor, settings in config.sources.items():
        assert str(settings.base_url).rstrip("/") == f"http://{public_host}:{ports[vendor]}"
        # The simulators take their tokens from the same variables the archivers read.
        assert settings.token.reveal() == service_env(simulators)[str(settings.token_env)]
    devrev = config.sources["devrev"]
    assert isinstance(devrev, DevRevSettings)
    assert devrev.version_keys == (simulator_service.DEVREV_APP,)
    assert devrev.session_type == simulator_service.DEVREV_TYPE


def test_every_file_compose_names_exists(compose: Document) -> None:
    def named_files(services: Mapping[str, Document]) -> Iterator[Path]:
        for service in services.values():
            for name in service.get("env_file", []):
                yield COMPOSE.parent / name
            build = service.get("build")
            if build:
                context = COMPOSE.parent / build["context"]
                yield context / build.get("dockerfile", "Dockerfile")
            for volume in service.get("volumes", []):
                source = volume.split(":")[0]
                if source.startswith("."):
                    yield COMPOSE.parent / source

    for path in named_files(compose["services"]):
        assert path.is_file(), path
