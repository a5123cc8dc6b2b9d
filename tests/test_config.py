"""Config is validated at start: unknown keys and bad values fail with the path of the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import DATA_DIR_ENV, DATABASE_URL_ENV, ConfigError, load_settings
from tests.support.gateway_process import REPO


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_shipped_config_loads() -> None:
    settings = load_settings(REPO / "config.yaml", env={})
    assert settings.pipeline.provider == "auto"
    assert settings.limits.max_upload_mb == 20
    chains = {tier: policy.providers for tier, policy in settings.routing.tiers.items()}
    assert all(set(chain) <= set(settings.providers) for chain in chains.values())


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("limits:\n  max_upload_mbb: 3\n", ["max_upload_mbb", "$.limits"]),
        ("surprise: 1\n", ["surprise"]),
        ("providers:\n  x:\n    kind: nonsense\n", ["$.providers", "kind"]),
        ("providers:\n  t:\n    kind: tesseract\n    psmm: 3\n", ["psmm"]),
        ("rendering:\n  dpi: 5000\n", ["dpi"]),
        ("pipeline:\n  provider: missing\n", ["missing"]),
        (
            "routing:\n  tiers:\n    simple: {credits: 1, providers: [nope]}\n"
            "    medium: {credits: 3, providers: []}\n    complex: {credits: 5, providers: []}\n",
            ["routing.tiers.simple", "nope", "is configured"],
        ),
        ("routing:\n  medium_from: 7\n  complex_from: 6\n", ["medium_from"]),
        ("limits: [1, 2\n", ["not valid YAML"]),
        (
            "plans:\n  free: {submissions: [10/hour], max_pages_per_document: 5,\n"
            "         max_upload_mb: 1, max_concurrent_jobs: 1, allowed_tiers: [medium]}\n",
            ["allowed_tiers must be", "$.plans"],
        ),
        (
            "plans:\n  free: {submissions: [10/hour], max_pages_per_document: 5,\n"
            "         max_upload_mb: 1, max_concurrent_jobs: 1,\n"
            "         allowed_tiers: [simple, complex]}\n",
            ["allowed_tiers must be"],
        ),
        (
            "plans:\n  free: {submissions: [10/hour], max_pages_per_document: 5,\n"
            "         max_upload_mb: 1, max_concurrent_jobs: 1, allowed_tiers: [simple, gold]}\n",
            ["gold"],
        ),
    ],
)
def test_bad_config_names_the_bad_key(tmp_path: Path, text: str, names: list[str]) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(write(tmp_path, text), env={})
    for name in names:
        assert name in str(error.value)


def test_data_dir_is_relative_to_the_config_file(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "data_dir: store\n"), env={})
    assert Path(settings.data_dir) == tmp_path / "store"
    assert settings.database_path == tmp_path / "store/gateway.sqlite3"


def test_environment_overrides_data_dir(tmp_path: Path) -> None:
    settings = load_settings(
        write(tmp_path, "data_dir: store\n"), env={DATA_DIR_ENV: str(tmp_path / "elsewhere")}
    )
    assert Path(settings.data_dir) == tmp_path / "elsewhere"


def test_environment_sets_the_database_url(tmp_path: Path) -> None:
    """OCR_GATEWAY_DATABASE_URL wins over database.url, keeps pool_size, and is checked."""
    config = write(tmp_path, "database: {url: postgresql://a@h/one, pool_size: 4}\n")
    settings = load_settings(config, env={DATABASE_URL_ENV: "postgresql://b@h/two"})
    assert settings.database.url == "postgresql://b@h/two"
    assert settings.database.pool_size == 4
    with pytest.raises(ConfigError, match=DATABASE_URL_ENV):
        load_settings(config, env={DATABASE_URL_ENV: "mysql://b@h/two"})
