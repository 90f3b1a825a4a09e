"""docker-compose.yml and the Dockerfile, checked as data (Docker does not run in CI).

Why these assertions: each guards a published "nothing lost" condition
(reliability-anchors §4, (b) C26-C29) or a wiring mistake that would only show
up at deploy time: a typo in an env var name, a worker whose command names a
module the image lacks, apps that disagree on the visibility timeout.
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
APP_SERVICES = ("api", "worker", "beat", "flower")
DOCKERFILE = (ROOT / "Dockerfile").read_text()
REQUIRED_ENV = {"MINIO_ROOT_PASSWORD": "x" * 16, "FLOWER_BASIC_AUTH": "admin:secret"}
_VAR = re.compile(r"\$\{([A-Z0-9_]+)(?::([-?])([^}]*))?\}")


def interpolate(value: Any, env: dict[str, str] = REQUIRED_ENV) -> Any:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}`` (``$$`` is a literal ``$``)."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.groups()
        if name in env:
            return env[name]
        if op == "?":
            raise KeyError(f"{name} is required: {arg}")
        return arg if op == "-" else ""

    return _VAR.sub(one, value.replace("$$", "\0")).replace("\0", "$")


def service(name: str) -> dict[str, Any]:
    return interpolate(SERVICES[name])  # type: ignore[no-any-return]


def command(name: str) -> list[str]:
    cmd = service(name)["command"]
    return cmd if isinstance(cmd, list) else shlex.split(cmd)


def dockerfile_instructions(keyword: str) -> list[str]:
    """Arguments of every ``KEYWORD`` line, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [line.split(None, 1)[1] for line in text.splitlines() if line.upper().startswith(keyword + " ")]


def test_services() -> None:
    assert set(SERVICES) == {"api", "worker", "beat", "flower", "redis", "minio", "minio-init", "clamav"}


def test_required_secrets_have_no_defaults() -> None:
    with pytest.raises(KeyError, match="MINIO_ROOT_PASSWORD"):
        interpolate(SERVICES["minio"], {})
    with pytest.raises(KeyError, match="FLOWER_BASIC_AUTH"):
        interpolate(SERVICES["flower"], {"MINIO_ROOT_PASSWORD": "x"})


def test_app_env_is_scale_out_and_identical() -> None:
    """One env for every process on the broker: Redis uses the shortest visibility timeout it is given."""
    envs = {name: service(name)["environment"] for name in APP_SERVICES}
    api = envs["api"]
    assert api["GATECHECK_STATE"] == "redis" and api["GATECHECK_STORAGE"] == "minio"
    assert api["GATECHECK_BROKER_URL"] == "redis://redis:6379/0" == api["GATECHECK_REDIS_URL"]
    assert api["GATECHECK_S3_ENDPOINT"] == "http://minio:9000"
    for name, env in envs.items():
        shared = {k: v for k, v in env.items() if k.startswith("GATECHECK_")}
        assert shared == {k: v for k, v in api.items() if k.startswith("GATECHECK_")}, name


@pytest.mark.catalogue(26)
def test_time_limit_below_visibility_timeout() -> None:
    env = service("worker")["environment"]
    settings = Settings(task_time_limit_s=int(env["GATECHECK_TASK_TIME_LIMIT_S"]),
                        visibility_timeout_s=int(env["GATECHECK_VISIBILITY_TIMEOUT_S"]))
    settings.validate()
    from worker.celery_app import config

    conf = config(settings)
    assert conf["task_soft_time_limit"] < conf["task_time_limit"] < conf["visibility_timeout"]


def test_env_names_are_read_by_the_code() -> None:
    """A misspelt variable in compose is silently ignored at run time; catch it here."""
    sources = "".join((ROOT / "service" / f).read_text() for f in ("settings.py", "storage.py", "state.py"))
    read = set(re.findall(r'"GATECHECK_([A-Z0-9_]+)"', sources)) | set(re.findall(r'_env\("([A-Z0-9_]+)"', sources))
    for name in APP_SERVICES:
        for key in service(name)["environment"]:
            if key.startswith("GATECHECK_"):
                assert key.removeprefix("GATECHECK_") in read, key


@pytest.mark.catalogue(29)
def test_redis_persists_the_queue_and_never_evicts() -> None:
    redis = service("redis")
    cmd = command("redis")
    flags = dict(zip(cmd[1::2], cmd[2::2], strict=False))
    assert cmd[0] == "redis-server"
    # always: an acknowledged submission is on disk before the 202 (catalogue 28; Redis 7 has no WAITAOF)
    assert flags["--appendonly"] == "yes" and flags["--appendfsync"] == "always"
    assert flags["--maxmemory-policy"] == "noeviction" and flags["--maxmemory"]
    assert any(v.endswith(":/data") for v in redis["volumes"])


def test_beat_schedules_retention_and_the_reconciler() -> None:
    """Beat (exactly one, in compose) drives both: retention with erasure audit, and re-enqueueing lost work."""
    from worker.celery_app import config

    schedule = config(Settings(broker_url="redis://redis:6379/0"))["beat_schedule"]
    assert {e["task"] for e in schedule.values()} >= {"worker.tasks.purge_expired", "worker.tasks.reconcile"}
    assert next(e for e in schedule.values() if e["task"] == "worker.tasks.reconcile")["schedule"] <= 300
    assert service("beat")["command"][:4] == ["celery", "-A", "worker.celery_app", "beat"]


def test_volumes_are_declared_and_mounted() -> None:
    declared = set(COMPOSE["volumes"])
    mounted = {v.split(":", 1)[0] for s in SERVICES.values() for v in s.get("volumes", [])}
    assert {"redis-data", "minio-data"} <= mounted == declared
    assert any(v.endswith(":/data") for v in service("minio")["volumes"])


def test_every_long_running_service_has_a_healthcheck() -> None:
    for name, svc in SERVICES.items():
        if name == "minio-init":
            continue
        check = svc.get("healthcheck", {})
        assert check.get("test"), name
        assert check.get("interval") and check.get("retries"), name


def test_startup_order_waits_for_healthy_dependencies() -> None:
    for name in ("api", "worker", "beat"):
        deps = service(name)["depends_on"]
        assert deps["redis"]["condition"] == "service_healthy", name
        assert deps["minio-init"]["condition"] == "service_completed_successfully", name
    init = service("minio-init")
    assert init["depends_on"]["minio"]["condition"] == "service_healthy"
    script = " ".join(init["command"])
    assert "mc mb --ignore-existing local/gatecheck" in script
    assert init["environment"]["MINIO_ROOT_PASSWORD"] == REQUIRED_ENV["MINIO_ROOT_PASSWORD"]
    assert service("api")["environment"]["GATECHECK_S3_BUCKET"] == "gatecheck"


def test_worker_is_scalable_and_stops_warm() -> None:
    worker = service("worker")
    assert int(worker["deploy"]["replicas"]) >= 1
    assert "container_name" not in worker and "ports" not in worker  # both would break --scale worker=N
    assert worker["stop_signal"] == "SIGTERM"
    grace = worker["stop_grace_period"]
    minutes = int(grace.removesuffix("m")) if grace.endswith("m") else int(grace.removesuffix("s")) / 60
    assert minutes * 60 > int(worker["environment"]["GATECHECK_TASK_TIME_LIMIT_S"])


def test_app_commands_name_real_entry_points() -> None:
    cmd = command("worker")
    assert cmd[:5] == ["celery", "-A", "worker.celery_app", "worker", "--pool=prefork"]
    assert "--task-events" in cmd  # Flower sees tasks only with events on
    assert command("beat")[:4] == ["celery", "-A", "worker.celery_app", "beat"]
    assert command("flower")[:4] == ["celery", "-A", "worker.celery_app", "flower"]
    assert hasattr(importlib.import_module("worker.celery_app"), "app")
    api = command("api")
    assert api[0] == "uvicorn" and "--factory" in api
    module, _, factory = next(a for a in api if ":" in a).partition(":")
    assert callable(getattr(importlib.import_module(module), factory))


def test_app_services_run_the_dockerfile_image() -> None:
    """The worker runs the image the Dockerfile builds, whose default command is the API's."""
    for name in APP_SERVICES:
        svc = service(name)
        assert svc["build"] == {"context": ".", "dockerfile": "Dockerfile"}, name
        assert svc["image"] == service("api")["image"], name
    assert [json.loads(c) for c in dockerfile_instructions("CMD")] == [command("api")]


def test_dockerfile_installs_the_package_and_every_command() -> None:
    assert dockerfile_instructions("FROM") == ["python:3.11-slim"]
    copied = " ".join(dockerfile_instructions("COPY"))
    for package in ("gatecheck", "extractors", "validators", "service", "worker", "pyproject.toml"):
        assert package in copied, package
    install = " ".join(r for r in dockerfile_instructions("RUN") if "pip install" in r)
    assert re.search(r"pip install \.(\s|$)", install)  # the package, with pyproject's dependencies
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    installed = " ".join(deps) + " " + install
    for program in ("celery[redis]", "uvicorn", "flower", "minio", "redis", "fastapi", "python-multipart"):
        assert re.search(rf'(^|[\s"]){re.escape(program)}(?![\w-])', installed), program
    assert '"celery[redis]>=5.7"' in install  # hard time limits reach on_failure (celery#10226)
    assert dockerfile_instructions("USER") and dockerfile_instructions("USER")[0] not in ("root", "0")


def test_flower_and_consoles_are_not_public() -> None:
    for name in ("flower", "minio"):
        for port in service(name).get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)


@pytest.mark.catalogue(22)
def test_clamav_scans_for_the_worker_and_never_passes_an_unscanned_file() -> None:
    """The worker scans every original with clamd (worker/avscan.py); over-limit files must not come back OK."""
    assert service("api")["environment"]["GATECHECK_CLAMD"] == "tcp://clamav:3310"
    assert service("worker")["depends_on"]["clamav"]["condition"] == "service_healthy"
    assert service("worker")["depends_on"]["redis"] == service("api")["depends_on"]["redis"]
    clamav = service("clamav")
    assert clamav["image"].startswith("clamav/clamav:")
    assert any(v == "clamav-db:/var/lib/clamav" for v in clamav["volumes"])  # freshclam's databases persist
    (mount,) = clamav["configs"]
    assert mount == {"source": "clamd-conf", "target": "/etc/clamav/clamd.conf"}
    conf = dict(line.split(None, 1) for line in COMPOSE["configs"]["clamd-conf"]["content"].splitlines() if line)
    assert conf["AlertExceedsMax"] == "yes"  # else clamd answers "OK" for a file it gave up on (anchors Z9)
    assert conf["TCPSocket"] == "3310" and conf["LocalSocket"] == "/tmp/clamd.sock"  # the image's entrypoint waits
    for key in ("StreamMaxLength", "MaxFileSize", "MaxScanSize"):  # ClamAV reads at most 2 GiB - 1 per file
        assert conf[key].endswith("M") and int(conf[key][:-1]) < 4096, key
    assert int(conf["MaxFileSize"][:-1]) <= 2047 and conf["StreamMaxLength"] == conf["MaxFileSize"]
