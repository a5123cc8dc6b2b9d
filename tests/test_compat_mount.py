"""Mounting the compatible surfaces: each under `compat.<name>.prefix`, at the root when its
prefix is empty and nothing collides; a collision or a malformed prefix stops the gateway at
start with a message naming the key; each surface has its own OpenAPI tag and security."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from gateway.app import create_app
from gateway.config import ConfigError, Settings, load_settings
from tests.support.gateway_process import REPO, write_config

# The app is built in this process: Litestar 2 warns, for every handler, of dependencies it
# infers by name (`services`, which the app provides), something Litestar 3 will stop doing.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SURFACE_PATHS = {
    "sotaocr": "/v1/extract",
    "jobapi": "/api/ocr",
    "solver": "/api/ocr/solve",
}


def settings_with(tmp_path: Path, compat: dict[str, object]) -> Settings:
    return load_settings(write_config(tmp_path / "config.yaml", tmp_path / "data", compat=compat))


def paths(settings: Settings) -> dict[str, dict[str, object]]:
    schema = create_app(settings).openapi_schema.to_schema()
    found: dict[str, dict[str, object]] = schema["paths"]
    return found


def test_each_surface_is_mounted_under_its_prefix_with_its_tag(tmp_path: Path) -> None:
    """Defaults /compat/<name>; every operation of a surface carries its tag and its scheme."""
    settings = settings_with(tmp_path, {})
    schema = create_app(settings).openapi_schema.to_schema()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["SotaBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "an API key",
    }
    assert schemes["SolverKey"] == {"type": "apiKey", "name": "api", "in": "query"}
    assert schemes["JobApiKey"] == {"type": "apiKey", "name": "X-API-Key", "in": "header"}
    for name, path in SURFACE_PATHS.items():
        operation = schema["paths"][f"/compat/{name}{path}"]["post"]
        assert operation["tags"] == [name]
    assert schema["paths"]["/compat/solver/api/balance"]["get"]["security"] == [{"SolverKey": []}]
    assert "security" not in schema["paths"]["/compat/jobapi/health"]["get"] or (
        schema["paths"]["/compat/jobapi/health"]["get"]["security"] == []
    )


def test_an_empty_prefix_mounts_at_the_root_and_a_disabled_surface_is_absent(
    tmp_path: Path,
) -> None:
    """The solver's routes do not collide with the native API's: "" puts them at the root."""
    found = paths(settings_with(tmp_path, {"solver": {"prefix": ""}, "jobapi": {"enabled": False}}))
    assert "/api/ocr/solve" in found
    assert "/compat/solver/api/ocr/solve" not in found
    assert not [p for p in found if p.startswith("/compat/jobapi")]
    assert "/v1/ocr" in found


@pytest.mark.parametrize(
    ("compat", "message"),
    [
        ({"sotaocr": {"prefix": ""}}, "compat.sotaocr.prefix '': GET /v1/balance is already"),
        ({"jobapi": {"prefix": ""}}, "compat.jobapi.prefix '': GET /health is already served"),
        (
            {"jobapi": {"prefix": "/x"}, "ocrv2": {"prefix": "/x"}},
            "compat.ocrv2.prefix '/x': POST /x/ocr is already served by compat.jobapi",
        ),
    ],
)
def test_a_colliding_prefix_is_refused(
    tmp_path: Path, compat: dict[str, object], message: str
) -> None:
    """Two routes on one method and path, native or another surface's: ConfigError naming it."""
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        create_app(settings_with(tmp_path, compat))


def test_the_gateway_does_not_start_on_a_collision(tmp_path: Path) -> None:
    """`ocr-gateway serve` exits with the message, no traceback."""
    config = write_config(
        tmp_path / "config.yaml", tmp_path / "data", compat={"sotaocr": {"prefix": ""}}
    )
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--port", "1"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "compat.sotaocr.prefix '': GET /v1/balance is already served by the native API" in (
        done.stderr
    )
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("prefix", ["compat/x", "/compat/x/", "/a b", "/"])
def test_a_malformed_prefix_fails_validation(tmp_path: Path, prefix: str) -> None:
    """A prefix is empty or path segments without a trailing slash."""
    with pytest.raises(ConfigError, match="prefix"):
        settings_with(tmp_path, {"solver": {"prefix": prefix}})


def test_a_default_profile_must_be_a_profile(tmp_path: Path) -> None:
    """The default model profile is one of the configured ones; profiles map onto modes."""
    with pytest.raises(ConfigError, match="default_model_profile 'turbo'"):
        settings_with(tmp_path, {"sotaocr": {"default_model_profile": "turbo"}})
    settings = settings_with(
        tmp_path, {"sotaocr": {"model_profiles": {"fast": "fast"}, "default_model_profile": "fast"}}
    )
    assert msgspec.to_builtins(settings.compat.sotaocr.model_profiles) == {"fast": "fast"}
