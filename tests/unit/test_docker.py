"""docker/: what can be checked without a Docker engine (these machines have none).

- ``compose.yaml`` is valid against the official compose-spec JSON schema (the copy
  check-jsonschema vendors) and hangs together: every ``depends_on`` target exists, and is a
  one-shot job where the condition says completed, with a health check where it says healthy;
  every named volume and secret is declared; every secret file is one ``make-secrets.sh``
  writes.
- Every command our image runs there (``command:``, health checks) parses as a real
  ``fraudscore`` command line, options and values included, and every ``FRAUDSCORE_*``
  variable is a real setting (``*_FILE`` only for secrets).
- ``Dockerfile``: hadolint finds nothing; the final stage runs as a non-root user from a slim
  Python 3.11 image with ``fraudscore`` as entrypoint and a health check that is a real
  command, and installs no compiler; every path it copies exists.

Not checked here: that the images build, that third-party images have the tags and tools
their health checks call, that the stack comes up (see docker/README.md).
"""

from __future__ import annotations

import importlib.util
import io
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import typer
import yaml
from dockerfile_parse import DockerfileParser
from pydantic import ValidationError
from sqlalchemy import make_url
from typer._click.core import Context
from typer._click.exceptions import UsageError

from app.cli import app
from app.settings import ENV_PREFIX, FraudscoreSettings, secret_fields

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
OURS = {name: s for name, s in SERVICES.items() if "build" in s}


def fraudscore_command(args: list[str]) -> Context:
    """Parse ``fraudscore ARGS`` as the CLI would, without running it: the context of the
    command it names; raises UsageError for an unknown command, option or bad value."""
    command, parent, rest, name = typer.main.get_command(app), None, list(args), "fraudscore"
    while True:
        ctx = command.make_context(name, rest, parent=parent)
        if not hasattr(command, "resolve_command"):  # a command, not a group
            return ctx
        remaining = [*ctx._protected_args, *ctx.args]  # what the group leaves to its commands
        if not remaining:
            return ctx
        name, command, rest = command.resolve_command(ctx, remaining)
        parent = ctx


def _health_args(service: dict[str, Any]) -> list[str] | None:
    check = service.get("healthcheck")
    if check is None or check.get("disable"):
        return None
    test = check["test"]
    assert test[0] in {"CMD", "CMD-SHELL"}, test
    return shlex.split(test[1]) if test[0] == "CMD-SHELL" else list(test[1:])


# --- compose.yaml --------------------------------------------------------------------------


def _compose_spec_schema() -> dict[str, Any]:
    """The official compose-spec schema as check-jsonschema vendors it (read as a file: its
    CLI needs a newer click than faust allows)."""
    spec = importlib.util.find_spec("check_jsonschema")  # does not import it
    assert spec is not None, "check-jsonschema is not installed: run .ci/install"
    assert spec.submodule_search_locations is not None
    package = Path(next(iter(spec.submodule_search_locations)))
    schema: dict[str, Any] = json.loads(
        (package / "builtin_schemas" / "vendor" / "compose-spec.json").read_text()
    )
    return schema


def test_the_compose_file_follows_the_compose_spec_schema() -> None:
    schema = _compose_spec_schema()
    assert "compose" in schema.get("title", "").lower() or "services" in schema["properties"]
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(COMPOSE), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_the_schema_check_would_catch_a_mistake() -> None:
    schema = _compose_spec_schema()
    broken = {**COMPOSE, "services": {"x": {"image": "a", "depends_on": {"y": {"when": 1}}}}}
    assert list(jsonschema.validators.validator_for(schema)(schema).iter_errors(broken))


def test_the_stack_has_every_part_the_deployment_needs() -> None:
    commands = {name: s["command"][0] for name, s in OURS.items()}
    assert sorted(commands.values()) == sorted(
        ["db", "worker", "worker", "audit-sink", "merchant-risk", "api", "loadgen", "authorizer"]
    )
    images = {s["image"].split(":")[0] for s in SERVICES.values() if "build" not in s}
    assert images == {"apache/kafka", "postgres", "minio/minio", "minio/mc"}
    kafka = SERVICES["kafka"]["environment"]
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft: no ZooKeeper
    assert "KAFKA_ZOOKEEPER_CONNECT" not in kafka


@pytest.mark.parametrize("name", sorted(OURS))
def test_each_command_of_our_image_is_a_real_fraudscore_command(name: str) -> None:
    service = OURS[name]
    assert "entrypoint" not in service  # the image's: fraudscore
    try:
        fraudscore_command([str(arg) for arg in service["command"]])
        health = _health_args(service)
        if health is not None:
            assert health[0] == "fraudscore", health
            fraudscore_command(health[1:])
    except UsageError as exc:
        pytest.fail(f"{name}: {exc.format_message()}")


def test_the_checker_refuses_what_the_cli_would_refuse() -> None:
    for args in (["nope"], ["db", "upgrade", "--no-such-option"], ["loadgen", "--rate", "x"]):
        with pytest.raises(UsageError):
            fraudscore_command(args)


def _environments() -> list[tuple[str, dict[str, str]]]:
    return [(name, s.get("environment", {})) for name, s in OURS.items()]


def test_every_fraudscore_variable_is_a_real_setting() -> None:
    fields = set(FraudscoreSettings.model_fields)
    secrets = set(secret_fields(FraudscoreSettings))
    for service, environment in _environments():
        assert isinstance(environment, dict), f"{service}: use the mapping form"
        for variable in environment:
            assert variable.startswith(ENV_PREFIX), f"{service}: {variable}"
            field = variable.removeprefix(ENV_PREFIX).lower()
            if field.endswith("_file") and field.removesuffix("_file") in secrets:
                assert environment[variable].startswith("/run/secrets/"), variable
            elif field == "database_url":  # a secret only when it holds the password
                assert make_url(environment[variable]).password is None, variable
            else:
                assert field in fields, f"{service}: {variable} is not a setting"
                assert field not in secrets, f"{service}: {variable} in clear; use {variable}_FILE"


def test_the_settings_in_compose_parse() -> None:
    """The values are what the settings accept (secret files aside: they are not here)."""
    for service, environment in _environments():
        values = {
            k.removeprefix(ENV_PREFIX).lower(): v
            for k, v in environment.items()
            if not k.endswith("_FILE")
        }
        try:
            FraudscoreSettings.model_validate(values)
        except ValidationError as exc:
            pytest.fail(f"{service}: {exc}")


_TOKEN_SETTINGS = {
    f"{ENV_PREFIX}API_{name}"
    for name in ("JWT_SECRET_FILE", "JWKS_FILE", "JWKS_URL", "JWT_ISSUER", "JWT_AUDIENCE")
}


def test_workers_answer_the_apis_forwarded_card_lookups() -> None:
    """The API forwards a card lookup, with the caller's token, to the worker that owns the
    card's partition, at the address the worker advertises: a worker must check tokens with
    the API's settings (else it answers 503) and advertise an address the API can reach (not
    the 0.0.0.0 it binds)."""
    api = SERVICES["api"]["environment"]
    tokens = {k: v for k, v in api.items() if k in _TOKEN_SETTINGS}
    assert tokens, "the API has no token settings"
    workers = {n: s for n, s in OURS.items() if s.get("command") == ["worker"]}
    assert len(workers) == 2
    for name, worker in workers.items():
        environment = worker["environment"]
        assert {k: environment.get(k) for k in tokens} == tokens, name
        for variable, path in tokens.items():
            if variable.endswith("_FILE"):
                assert Path(path).name in worker["secrets"], f"{name}: {path} not mounted"
        advertised = environment[f"{ENV_PREFIX}WORKER_HTTP_ADVERTISED_URL"]
        port = environment[f"{ENV_PREFIX}WORKER_HTTP_PORT"]
        assert advertised == f"http://{name}:{port}", name


def test_depends_on_names_services_with_what_the_condition_needs() -> None:
    for name, service in SERVICES.items():
        for target, rule in service.get("depends_on", {}).items():
            assert target in SERVICES, f"{name} depends on unknown {target}"
            condition = rule["condition"]
            if condition == "service_healthy":
                health = SERVICES[target].get("healthcheck")
                image_default = "build" in SERVICES[target] and health is None
                assert image_default or (health and not health.get("disable")), target
            elif condition == "service_completed_successfully":
                assert SERVICES[target].get("restart") == "no", f"{target} is not a one-shot"
            else:
                pytest.fail(f"{name} → {target}: condition {condition}")


def test_every_long_running_service_has_a_health_check() -> None:
    for name, service in SERVICES.items():
        if service.get("restart") == "no":
            continue
        if "build" in service:  # the image's HEALTHCHECK, unless the service sets its own
            health = service.get("healthcheck", {})
            assert not health.get("disable"), name
        else:
            assert "healthcheck" in service, name


def test_volumes_and_secrets_are_declared_and_the_secret_files_are_generated() -> None:
    volumes, secrets = set(COMPOSE["volumes"]), set(COMPOSE["secrets"])
    for name, service in SERVICES.items():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("."):
                assert (DOCKER / source).exists(), f"{name}: {source}"
            else:
                assert source in volumes, f"{name}: volume {source}"
        for secret in service.get("secrets", []):
            assert secret in secrets, f"{name}: secret {secret}"
        for value in service.get("environment", {}).values():
            if str(value).startswith("/run/secrets/"):
                assert value.removeprefix("/run/secrets/") in service.get("secrets", []), value
    generator = (DOCKER / "make-secrets.sh").read_text()
    for secret in COMPOSE["secrets"].values():
        file = Path(secret["file"])
        assert file.parent == Path("secrets"), file
        assert re.search(rf"^secret {re.escape(file.name)} ", generator, re.M), file.name


# --- Dockerfile ----------------------------------------------------------------------------


DOCKERFILE = (DOCKER / "Dockerfile").read_text()


def _dockerfile() -> DockerfileParser:
    return DockerfileParser(fileobj=io.BytesIO(DOCKERFILE.encode()))


def _stages() -> list[list[dict[str, Any]]]:
    stages: list[list[dict[str, Any]]] = []
    for instruction in _dockerfile().structure:
        if instruction["instruction"] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def test_hadolint_finds_nothing() -> None:
    program = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert program is not None, "hadolint is not installed: run .ci/install"
    result = subprocess.run(
        [program, "--no-color", str(DOCKER / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_is_built_in_two_stages_from_slim_python_311() -> None:
    stages = _stages()
    assert len(stages) == 2
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", DOCKERFILE, re.M)
    for stage in stages:
        assert stage[0]["value"].startswith("${PYTHON_IMAGE} AS ")


def test_the_final_stage_runs_fraudscore_as_a_non_root_user_without_compilers() -> None:
    final = _stages()[-1]
    by_name: dict[str, list[str]] = {}
    for instruction in final:
        by_name.setdefault(instruction["instruction"], []).append(instruction["value"])
    user = by_name["USER"][-1].split(":")[0]
    assert user not in {"root", "0"}
    assert json.loads(by_name["ENTRYPOINT"][-1]) == ["fraudscore"]
    runs = " ".join(by_name.get("RUN", []))
    for tool in ("build-essential", "gcc", "apt-get install", "pip install"):
        assert tool not in runs, f"the final stage installs {tool}"
    assert all("--from=builder" in copy for copy in by_name["COPY"])
    health = by_name["HEALTHCHECK"][-1]
    command = json.loads(health[health.index("CMD") + 3 :].strip())
    assert command[0] == "fraudscore"
    fraudscore_command(command[1:])
    for assignment in " ".join(by_name["ENV"]).split():
        variable = assignment.split("=")[0]
        if variable.startswith(ENV_PREFIX):
            assert variable.removeprefix(ENV_PREFIX).lower() in FraudscoreSettings.model_fields


def test_every_path_the_build_copies_exists_and_is_in_the_build_context() -> None:
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().split()
    allowed = {line.removeprefix("!").rstrip("/") for line in ignore if line.startswith("!")}
    for instruction in _dockerfile().structure:
        if instruction["instruction"] != "COPY" or "--from=" in instruction["value"]:
            continue
        *sources, _destination = instruction["value"].split()
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            assert source.rstrip("/") in allowed, f"COPY {source}: excluded by .dockerignore"
