"""Settings: the only reader of config.yaml and of the environment.

Decoded straight into frozen Structs with unknown fields rejected, so a typo fails at start with
the path of the bad key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import msgspec

from gateway.compat_config import CompatSettings
from providers.factory import ProviderConfig
from providers.rapidocr import RapidOCRConfig
from providers.tesseract import TesseractConfig
from router.policy import TEXT_LAYER, TIER_ORDER, RoutingPolicy, Tier
from scoring.handwriting_lines import HandwritingSettings

DATA_DIR_ENV = "OCR_GATEWAY_DATA_DIR"
DATABASE_URL_ENV = "OCR_GATEWAY_DATABASE_URL"
CONFIG_ENV = "OCR_GATEWAY_CONFIG"
REDIS_URL_ENV = "OCR_GATEWAY_REDIS_URL"  # redis://host:port/db: rate limits shared by API nodes


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
    max_queued_pages: int = 10_000  # pages waiting or being read; past it submits are 503

    def __post_init__(self) -> None:
        if self.max_upload_mb <= 0 or self.max_pages < 1 or self.max_pixels_per_page < 10_000:
            raise ValueError("limits must be positive (max_pixels_per_page >= 10000)")
        if self.max_queued_pages < 1:
            raise ValueError("limits.max_queued_pages must be >= 1")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


class RenderSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    dpi: int = 200

    def __post_init__(self) -> None:
        if not 50 <= self.dpi <= 600:
            raise ValueError("dpi must be between 50 and 600")


class DatabaseSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Unset `url`: SQLite in the data folder. `postgresql://user:pass@host:5432/db`: PostgreSQL,
    which any number of API and worker nodes share (env OCR_GATEWAY_DATABASE_URL)."""

    url: str | None = None
    pool_size: int = 10  # connections per node

    def __post_init__(self) -> None:
        if self.url is not None and not self.url.startswith(("postgresql://", "postgres://")):
            raise ValueError("database.url must be a postgresql:// URL (unset: SQLite)")
        if self.pool_size < 2:
            raise ValueError("database.pool_size must be >= 2")


class WorkerSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    processes: int = 0  # 0: one per CPU core
    max_page_attempts: int = 3  # a page that kills its worker this often fails for good
    poll_interval_s: float = 1.0
    # A page being read is leased to its worker, which extends the lease every lease_s / 3; a
    # page whose lease ran out (its node died) is read again by another worker.
    lease_s: float = 60.0
    heartbeat_s: float = 10.0  # how often a node says it is alive (/health's nodes)

    def __post_init__(self) -> None:
        if self.lease_s < 3 or self.heartbeat_s <= 0:
            raise ValueError("worker.lease_s must be >= 3 and worker.heartbeat_s > 0")

    @property
    def process_count(self) -> int:
        return self.processes or (os.cpu_count() or 1)


AUTO = "auto"


class PipelineSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    provider: str = AUTO  # "auto": complexity routing; a provider's name: it reads every page
    orientation: bool = True  # detect pages turned 90/180/270 degrees and read them upright
    osd_min_confidence: float = 2.0  # Tesseract OSD confidence needed to turn a page
    handwriting: HandwritingSettings = HandwritingSettings()  # each line handwritten or printed


class CreditSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    credits_per_page: int = 1


class PlanSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    submissions: list[str]  # rate limits on POST /v1/ocr per tenant, e.g. ["10/hour", "100/day"]
    max_pages_per_document: int
    max_upload_mb: float
    max_concurrent_jobs: int  # jobs pending or processing at once
    # tiers this plan's pages may be read at; a harder page is read at the highest of them
    allowed_tiers: list[Tier] = msgspec.field(default_factory=lambda: list(TIER_ORDER))

    def __post_init__(self) -> None:
        from limits import parse_many

        if set(self.allowed_tiers) not in (
            {Tier.SIMPLE},
            {Tier.SIMPLE, Tier.MEDIUM},
            set(TIER_ORDER),
        ):
            raise ValueError(
                "allowed_tiers must be [simple], [simple, medium] or all three: "
                "a page is lowered to the highest allowed tier below its own"
            )

        for rule in self.submissions:
            try:
                parse_many(rule)
            except ValueError as exc:
                raise ValueError(f"bad rate limit {rule!r} (e.g. '100/minute')") from exc
        if (
            self.max_pages_per_document < 1
            or self.max_upload_mb <= 0
            or self.max_concurrent_jobs < 1
        ):
            raise ValueError("plan limits must be positive")


def _default_plans() -> dict[str, PlanSettings]:
    """The complexity-routing OCR API's published plans."""
    return {
        "free": PlanSettings(
            submissions=["10/hour", "100/day"],
            max_pages_per_document=20,
            max_upload_mb=10,
            max_concurrent_jobs=2,
        ),
        "starter": PlanSettings(
            submissions=["100/minute"],
            max_pages_per_document=200,
            max_upload_mb=20,
            max_concurrent_jobs=10,
        ),
        "professional": PlanSettings(
            submissions=["500/minute"],
            max_pages_per_document=500,
            max_upload_mb=20,
            max_concurrent_jobs=50,
        ),
        "business": PlanSettings(
            submissions=["2000/minute"],
            max_pages_per_document=500,
            max_upload_mb=20,
            max_concurrent_jobs=200,
        ),
    }


class RateLimitSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # `limits` storage; async+redis://host:6379/0 (env OCR_GATEWAY_REDIS_URL) shares it across nodes
    storage_uri: str = "async+memory://"
    reads: str = "1200/minute"  # status and result reads, per API key
    admin: str = "600/minute"

    def __post_init__(self) -> None:
        from limits import parse_many

        for rule in (self.reads, self.admin):
            parse_many(rule)


class AdminSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    token_env: str = "OCR_GATEWAY_ADMIN_TOKEN"  # noqa: S105 - the variable's name, not a secret


class SignupSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    enabled: bool = False
    plan: str = "free"
    free_credits: int = 500


class RetentionSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    days: float = 30.0  # finished jobs, their uploads and results are deleted after this; 0 keeps
    sweep_interval_s: float = 3600.0


class CacheSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The same bytes with the same options, from the same tenant within retention, are
    answered from the earlier job at once (form field `cache=false` reads them again)."""

    enabled: bool = True
    credits_per_page: int = msgspec.field(default=0)  # the price of a page answered from cache

    def __post_init__(self) -> None:
        if self.credits_per_page < 0:
            raise ValueError("cache.credits_per_page must be >= 0")


class QuoteSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    hold_s: float = 3600.0  # a submit naming the quote is billed by it for this long

    def __post_init__(self) -> None:
        if self.hold_s <= 0:
            raise ValueError("quotes.hold_s must be > 0")


class MetricsSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`GET /metrics` (Prometheus): open to clients on the loopback interface, to others only
    with the token in `token_env` as a Bearer token (refused while that variable is unset)."""

    enabled: bool = True
    open_on_loopback: bool = True
    token_env: str = "OCR_GATEWAY_METRICS_TOKEN"  # noqa: S105 - the variable's name, not a secret


class FetchSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Documents by URL and webhook deliveries: where the gateway may connect, how long it
    waits. Addresses that are not public (loopback, private, link-local and metadata,
    multicast, reserved) are refused unless a host or a network here allows them."""

    allow_hosts: list[str] = msgspec.field(default_factory=list)  # exact host names, e.g. files.lan
    allow_networks: list[str] = msgspec.field(default_factory=list)  # CIDR, e.g. 10.0.0.0/8
    timeout_s: float = 60.0  # the whole fetch: DNS, connect, redirects, body
    connect_timeout_s: float = 10.0
    max_redirects: int = 3

    def __post_init__(self) -> None:
        import ipaddress

        for network in self.allow_networks:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError as exc:
                raise ValueError(f"fetch.allow_networks: {network!r} is not a network") from exc
        for host in self.allow_hosts:
            if not host or any(c in host for c in "/:@ ") or host != host.lower():
                raise ValueError(f"fetch.allow_hosts: {host!r} must be a lower-case host name")
        if self.timeout_s <= 0 or self.connect_timeout_s <= 0 or not 0 <= self.max_redirects <= 10:
            raise ValueError("fetch: timeouts must be > 0 and max_redirects within 0..10")


class WebhookSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Job webhooks (`callback_url`): delivered from a durable outbox, retried with exponential
    backoff (first_retry_s, doubling up to max_retry_interval_s) for retry_for_s after the job
    finished."""

    timeout_s: float = 10.0  # one delivery attempt
    first_retry_s: float = 5.0
    max_retry_interval_s: float = 600.0
    retry_for_s: float = 86_400.0
    poll_interval_s: float = 1.0  # how often the outbox is looked at

    def __post_init__(self) -> None:
        values = (self.timeout_s, self.first_retry_s, self.max_retry_interval_s)
        if min(*values, self.retry_for_s, self.poll_interval_s) <= 0:
            raise ValueError("webhooks: every duration must be > 0")


class LogSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    level: Literal["debug", "info", "warning", "error"] = "info"
    json: bool = True


def _default_providers() -> dict[str, ProviderConfig]:
    return {"rapidocr": RapidOCRConfig(), "tesseract": TesseractConfig()}


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    data_dir: str = "data"
    database: DatabaseSettings = DatabaseSettings()
    server: ServerSettings = ServerSettings()
    limits: LimitSettings = LimitSettings()
    rendering: RenderSettings = RenderSettings()
    worker: WorkerSettings = WorkerSettings()
    pipeline: PipelineSettings = PipelineSettings()
    credits: CreditSettings = CreditSettings()
    logging: LogSettings = LogSettings()
    providers: dict[str, ProviderConfig] = msgspec.field(default_factory=_default_providers)
    plans: dict[str, PlanSettings] = msgspec.field(default_factory=_default_plans)
    rate_limits: RateLimitSettings = RateLimitSettings()
    admin: AdminSettings = AdminSettings()
    signup: SignupSettings = SignupSettings()
    retention: RetentionSettings = RetentionSettings()
    cache: CacheSettings = CacheSettings()
    quotes: QuoteSettings = QuoteSettings()
    fetch: FetchSettings = FetchSettings()
    metrics: MetricsSettings = MetricsSettings()
    webhooks: WebhookSettings = WebhookSettings()
    compat: CompatSettings = CompatSettings()  # the compatible API surfaces
    routing: RoutingPolicy = RoutingPolicy()

    def __post_init__(self) -> None:
        for tier, policy in self.routing.tiers.items():
            if policy.providers and not set(policy.providers) & set(self.providers):
                raise ValueError(
                    f"routing.tiers.{tier}: none of its providers "
                    f"({', '.join(policy.providers)}) is configured"
                )
        missing = {"free", "starter", "professional", "business"} - set(self.plans)
        if missing:
            raise ValueError(f"plans: missing {', '.join(sorted(missing))}")
        if self.signup.plan not in self.plans:
            raise ValueError(f"signup.plan {self.signup.plan!r} is not a configured plan")
        if self.pipeline.provider != AUTO and self.pipeline.provider not in self.providers:
            raise ValueError(
                f"pipeline.provider {self.pipeline.provider!r} is not among the configured "
                f"providers ({', '.join(sorted(self.providers)) or 'none'})"
            )

    def _chain_providers(self) -> set[str]:
        """Every provider named in a tier chain, configured or not."""
        return {p for tier in self.routing.tiers.values() for p in tier.providers}

    def routed_providers(self) -> set[str]:
        """Providers a page goes to without a request naming one: the tier chains, the
        clean-print rule's and a fixed `pipeline.provider`."""
        named = self._chain_providers()
        if self.routing.clean_print is not None:
            named.add(self.routing.clean_print.provider)
        if self.pipeline.provider != AUTO:
            named.add(self.pipeline.provider)
        return named & set(self.providers)

    def unknown_chain_providers(self) -> list[str]:
        """Providers named in tier chains but not configured: skipped when routing."""
        return sorted(self._chain_providers() - set(self.providers) - {TEXT_LAYER})

    @property
    def database_path(self) -> Path:
        return Path(self.data_dir) / "gateway.sqlite3"

    @property
    def uploads_dir(self) -> Path:
        return Path(self.data_dir) / "uploads"

    @property
    def metrics_dir(self) -> Path:
        """prometheus-client's multi-process files (emptied at every start)."""
        return Path(self.data_dir) / "metrics"


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
    settings = msgspec.structs.replace(settings, data_dir=str(data_dir))
    if database_url := env.get(DATABASE_URL_ENV):
        try:
            database = DatabaseSettings(url=database_url, pool_size=settings.database.pool_size)
        except ValueError as exc:
            raise ConfigError(f"{DATABASE_URL_ENV}: {exc}") from exc
        settings = msgspec.structs.replace(settings, database=database)
    if redis_url := env.get(REDIS_URL_ENV):
        if not redis_url.startswith(("redis://", "rediss://", "redis+unix://")):
            raise ConfigError(f"{REDIS_URL_ENV} must be a redis:// URL, not {redis_url!r}")
        limits = msgspec.structs.replace(settings.rate_limits, storage_uri=f"async+{redis_url}")
        settings = msgspec.structs.replace(settings, rate_limits=limits)
    return settings
