"""docker-compose.yml and the Dockerfile: no Docker engine runs here, so check that they hang together."""

from __future__ import annotations

import re
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
    assert set(compose["services"]) == AIRFLOW_SERVICES | {"postgres", "redis"}


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
