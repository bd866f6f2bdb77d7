"""docker-compose.yml and the Dockerfile: no Docker engine runs here, so check that they hang together."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import ROOT

AIRFLOW_SERVICES = {
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
    "airflow-init",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_the_stack_has_every_service(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == AIRFLOW_SERVICES | {"postgres", "redis", "websub-receiver"}


def test_the_websub_receiver_listens_on_localhost_only(compose: dict[str, Any]) -> None:
    receiver = compose["services"]["websub-receiver"]
    assert receiver["ports"] == ["127.0.0.1:8086:8086"] and "websub serve" in " ".join(receiver["command"])
    assert receiver["environment"]["NEWSFLOW_DATABASE_URL"].endswith("@postgres:5432/news")


def test_airflow_services_share_the_image_and_run_celery_on_redis(compose: dict[str, Any]) -> None:
    for name in AIRFLOW_SERVICES:
        service = compose["services"][name]
        assert service["build"] == "." and service["image"].startswith("${AIRFLOW_IMAGE_NAME"), name
        environment = service["environment"]
        assert environment["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert environment["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://"), name
        assert "@postgres/" in environment["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], name
        assert environment["AIRFLOW_CONN_NEWSFLOW_DB"].endswith("@postgres:5432/news"), name


def test_workers_can_scale(compose: dict[str, Any]) -> None:
    worker = compose["services"]["airflow-worker"]
    assert "container_name" not in worker and "ports" not in worker
    assert worker["command"] == "celery worker"


def test_every_mounted_file_exists_and_every_volume_is_declared(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), (name, source)
            else:
                assert source in compose["volumes"], (name, source)


def test_every_secret_comes_from_the_env_example(compose: dict[str, Any]) -> None:
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    used = set(re.findall(r"(?<!\$)\$\{(\w+)", text))  # "$${HOSTNAME}" is the container's own variable
    example = {line.split("=", 1)[0] for line in (ROOT / ".env.example").read_text().splitlines() if "=" in line}
    assert used <= example, used - example
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_dockerfile_builds_from_airflow_and_copies_what_exists() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM apache/airflow:3\.3\.2", dockerfile, re.MULTILINE)
    for line in dockerfile.splitlines():
        if line.startswith("COPY"):
            for source in line.split()[2:-1]:
                assert (ROOT / source).exists(), source
    assert "requirements/model.txt" in dockerfile and "--require-hashes" in dockerfile


def test_the_init_script_creates_the_news_database() -> None:
    script = (ROOT / "docker" / "postgres-init.sql.in").read_text(encoding="utf-8")
    assert "CREATE DATABASE news" in script
    assert Path(ROOT / "docker" / "postgres-init.sh").stat().st_mode & 0o111


SECRETS = {
    "POSTGRES_PASSWORD",
    "NEWS_DB_PASSWORD",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "_AIRFLOW_WWW_USER_PASSWORD",
}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|_KEY\b")
# Every ${...} the compose file interpolates: the variable, and its operator (":-", "-", ":?", "?") if any.
REFERENCE = re.compile(r"(?<!\$)\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def test_compose_refuses_to_start_while_a_secret_is_unset() -> None:
    """Each secret is ``${VAR:?message}`` wherever it is used (an unset or empty VAR stops compose), never a
    known fallback such as ``${VAR:-airflow}``; so is every variable whose name says it is a secret."""
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    references = REFERENCE.findall(text)
    used = {name for name, _, _ in references}
    assert used >= SECRETS, SECRETS - used
    for name, operator, message in references:
        if name in SECRETS or SECRET_NAME.search(name):
            assert operator == ":?" and ".env" in message, f"${{{name}{operator}{message}}}"


def test_the_env_example_holds_no_usable_secret() -> None:
    """Copied as it is, .env.example still stops compose: every secret is empty, with how to make one."""
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    for name in SECRETS:
        value = re.search(rf"^{name}=(.*)$", example, re.MULTILINE)
        assert value is not None and value.group(1) == "", name
    assert "secrets.token_urlsafe" in example and "Fernet.generate_key" in example


def _has_docker_compose() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True, check=False).returncode == 0


@pytest.mark.skipif(not _has_docker_compose(), reason="no docker compose here")
def test_docker_compose_config_fails_without_an_env_file(tmp_path: Path) -> None:
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    env = {key: value for key, value in os.environ.items() if key not in SECRETS}
    result = subprocess.run(
        ["docker", "compose", "config"], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0 and "set " in result.stderr


def test_the_api_server_listens_on_localhost(compose: dict[str, Any]) -> None:
    assert all(
        port.startswith("127.0.0.1:") or port.startswith("${")
        for port in compose["services"]["airflow-apiserver"]["ports"]
    )


@pytest.mark.parametrize(("asked", "bound"), [((), "127.0.0.1"), (("AIRFLOW_HOST=0.0.0.0",), "0.0.0.0")])
def test_make_airflow_binds_to_localhost_unless_asked(asked: tuple[str, ...], bound: str) -> None:
    result = subprocess.run(
        ["make", "-n", "--no-print-directory", "airflow", *asked], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert f"AIRFLOW__API__HOST={bound} " in result.stdout
