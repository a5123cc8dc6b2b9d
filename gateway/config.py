"""Settings: the only reader of config.yaml and of the environment.

Decoded straight into frozen Structs with unknown fields rejected, so a typo fails at start with
the path of the bad key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import msgspec

from providers.factory import ProviderConfig
from providers.rapidocr import RapidOCRConfig
from providers.tesseract import TesseractConfig

DATA_DIR_ENV = "OCR_GATEWAY_DATA_DIR"
CONFIG_ENV = "OCR_GATEWAY_CONFIG"


class ConfigError(Exception):
    """The configuration cannot be used; the message names the bad key."""


class ServerSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: int = 8080


class LimitSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    max_upload_mb: float = 20.0
    max_pages: int = 500
    max_pixels_per_page: int = 40_000_000  # decompression-bomb guard; PDFs render below it
    render_timeout_s: float = 60.0
    inspect_timeout_s: float = 30.0
    page_timeout_s: float = 180.0  # render + OCR of one page, whole

    def __post_init__(self) -> None:
        if self.max_upload_mb <= 0 or self.max_pages < 1 or self.max_pixels_per_page < 10_000:
            raise ValueError("limits must be positive (max_pixels_per_page >= 10000)")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


class RenderSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    dpi: int = 200

    def __post_init__(self) -> None:
        if not 50 <= self.dpi <= 600:
            raise ValueError("dpi must be between 50 and 600")


class WorkerSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    processes: int = 0  # 0: one per CPU core
    max_page_attempts: int = 3  # a page that kills its worker this often fails for good
    poll_interval_s: float = 1.0

    @property
    def process_count(self) -> int:
        return self.processes or (os.cpu_count() or 1)


class PipelineSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    provider: str = "rapidocr"  # until routing exists, one provider reads every page


class CreditSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    credits_per_page: int = 1


class LogSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    level: Literal["debug", "info", "warning", "error"] = "info"
    json: bool = True


def _default_providers() -> dict[str, ProviderConfig]:
    return {"rapidocr": RapidOCRConfig(), "tesseract": TesseractConfig()}


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    data_dir: str = "data"
    server: ServerSettings = ServerSettings()
    limits: LimitSettings = LimitSettings()
    rendering: RenderSettings = RenderSettings()
    worker: WorkerSettings = WorkerSettings()
    pipeline: PipelineSettings = PipelineSettings()
    credits: CreditSettings = CreditSettings()
    logging: LogSettings = LogSettings()
    providers: dict[str, ProviderConfig] = msgspec.field(default_factory=_default_providers)

    def __post_init__(self) -> None:
        if self.pipeline.provider not in self.providers:
            raise ValueError(
                f"pipeline.provider {self.pipeline.provider!r} is not among the configured "
                f"providers ({', '.join(sorted(self.providers)) or 'none'})"
            )

    @property
    def database_path(self) -> Path:
        return Path(self.data_dir) / "gateway.sqlite3"

    @property
    def uploads_dir(self) -> Path:
        return Path(self.data_dir) / "uploads"


def load_settings(path: Path | None = None, env: dict[str, str] | None = None) -> Settings:
    """Read `path` (or $OCR_GATEWAY_CONFIG, or defaults), then apply environment overrides."""
    env = dict(os.environ) if env is None else env
    if path is None and env.get(CONFIG_ENV):
        path = Path(env[CONFIG_ENV])
    try:
        if path is None:
            settings = msgspec.convert({}, Settings)
        else:
            settings = msgspec.yaml.decode(path.read_bytes(), type=Settings)
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid config {path}: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise ConfigError(f"config {path} is not valid YAML: {exc}") from exc
    base = path.parent if path is not None else Path.cwd()
    data_dir = Path(env[DATA_DIR_ENV]) if env.get(DATA_DIR_ENV) else Path(settings.data_dir)
    if not data_dir.is_absolute():
        data_dir = (base / data_dir).resolve()
    return msgspec.structs.replace(settings, data_dir=str(data_dir))
