"""Settings of the compatible API surfaces (`compat:` in config.yaml), read by gateway.config.

Each surface is `compat.<name>` with `enabled` and `prefix` (where its routes are mounted; ""
mounts them at the root, which the gateway refuses at start if a route would collide), plus
what that surface alone needs.
"""

from __future__ import annotations

import re

import msgspec

from router.policy import Mode

_PREFIX = re.compile(r"^(/[A-Za-z0-9._~-]+)*$")


class SurfaceSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    enabled: bool = True
    prefix: str = ""

    def __post_init__(self) -> None:
        if not _PREFIX.match(self.prefix):
            raise ValueError(
                f"prefix {self.prefix!r} must be empty (the root) or path segments such as "
                "/compat/name, without a trailing slash"
            )


def _profiles() -> dict[str, Mode]:
    return {"fast": Mode.FAST, "balanced": Mode.AUTO, "accurate": Mode.ACCURATE}


class SotaOcrSettings(SurfaceSettings, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """000, the page-balance API. `model_profiles` maps each profile a client may send onto
    the gateway's `mode`; GET /api/v1/info lists them."""

    prefix: str = "/compat/sotaocr"
    model_profiles: dict[str, Mode] = msgspec.field(default_factory=_profiles)
    default_model_profile: str = "balanced"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.default_model_profile not in self.model_profiles:
            raise ValueError(
                f"default_model_profile {self.default_model_profile!r} is not one of "
                f"model_profiles ({', '.join(sorted(self.model_profiles)) or 'none'})"
            )


class JobApiSettings(SurfaceSettings, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """001, the job API with signup (signup itself follows `signup:`)."""

    prefix: str = "/compat/jobapi"
    sync_timeout_s: float = 300.0  # POST /ocr answers 504 past this

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sync_timeout_s <= 0:
            raise ValueError("sync_timeout_s must be > 0")


class SolverSettings(SurfaceSettings, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """002, the image solver API: one solve = the simple tier's credits."""

    prefix: str = "/compat/solver"
    task_ttl_s: float = 30.0  # a task and its image are deleted this long after it finishes
    sweep_interval_s: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.task_ttl_s <= 0 or self.sweep_interval_s <= 0:
            raise ValueError("task_ttl_s and sweep_interval_s must be > 0")


def _versions() -> dict[int, Mode]:
    return {1: Mode.AUTO, 2: Mode.ACCURATE}


class Ocrv2Settings(SurfaceSettings, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """004, the read-results API. `versions` maps the request's `version` onto a routing mode."""

    prefix: str = "/compat/ocrv2"
    sync_timeout_s: float = 300.0  # POST /ocr and /ocr/zip answer 502 past this
    versions: dict[int, Mode] = msgspec.field(default_factory=_versions)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sync_timeout_s <= 0 or not self.versions:
            raise ValueError("sync_timeout_s must be > 0 and versions not empty")


class CompatSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    sotaocr: SotaOcrSettings = SotaOcrSettings()
    jobapi: JobApiSettings = JobApiSettings()
    solver: SolverSettings = SolverSettings()
    ocrv2: Ocrv2Settings = Ocrv2Settings()
