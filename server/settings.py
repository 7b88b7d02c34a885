"""One settings object, read from the environment (or a `.env` file)."""

from __future__ import annotations

from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# RabbitMQ closes a channel that holds an unacknowledged delivery for longer than this
# (its default `consumer_timeout`); a task's hard time limit must stay well below it.
BROKER_CONSUMER_TIMEOUT_SECONDS = 1800
# A signing secret shorter than this (a word, a placeholder) could be guessed.
MIN_SECRET_LENGTH = 32

IPNetwork = IPv4Network | IPv6Network

# Where a test may make a process kill itself (see server/crash.py).
CrashPoint = Literal["after_commit"]

# Where `make run` keeps the servers it starts itself, and the URLs of the ones it started
# from docker-compose.yml (read after `.env`; the environment still wins over both).
SERVICES_DIR = Path("var/services")
SERVICE_URLS_FILE = SERVICES_DIR / "urls.env"
# `python -m server.run` (all processes) while it runs: `make stop` ends it first.
RUN_PID_FILE = Path("var/run.pid")
# RabbitMQ's management UI listens on its AMQP port + this (its default pairing: 15672 beside
# 5672), and so does the project's own broker.
MANAGEMENT_PORT_OFFSET = 10_000


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=(".env", SERVICE_URLS_FILE), extra="ignore")

    database_url: str = "postgresql+psycopg2://postgres@127.0.0.1:5432/csv_import"
    broker_url: str = "amqp://guest:guest@127.0.0.1:5672//"
    redis_url: str = "redis://127.0.0.1:6379/0"
    upload_dir: Path = Path("var/uploads")
    # Where uploads are kept: empty for UPLOAD_DIR, `file:///path`, or `s3://bucket/prefix`
    # (an S3-compatible store at S3_ENDPOINT_URL, else boto3's own AWS_ENDPOINT_URL or AWS;
    # credentials from the usual AWS variables).
    storage_url: str = ""
    s3_endpoint_url: str | None = None
    # Where this host's processes keep their metric samples (prometheus-client's multiprocess
    # mode): the API and the workers of one host share it, and /metrics sums it.
    metrics_dir: Path = Path("var/metrics")
    # /metrics asks the database and the broker at most this often (gauges between are cached).
    metrics_cache_seconds: float = Field(default=5.0, ge=0)
    # `python -m server.run exporter`: this host's samples, for a worker host without an API.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9808
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    public_url: str = ""
    # What `make run` does about a service that does not answer at its URL on this machine:
    # `auto` starts it from docker-compose.yml when a Docker engine runs, else as a server of
    # the project's own under var/services/; `docker` or `local` only that way; `never`
    # says how to start it instead (as production always does).
    start_services: Literal["auto", "docker", "local", "never"] = "auto"
    # `json`: one JSON object per log line, with the job id, tenant and request id on every
    # line about them (for a log collector); `text` reads better in a terminal.
    log_format: Literal["text", "json"] = "text"

    # In `production` the API refuses to start without a secret key, and setup never
    # creates a first API key by itself.
    environment: Literal["local", "production"] = "local"
    # Signs the short-lived tokens of event-stream URLs. When empty (local only), a random
    # one is generated once into `secret_key_file` and read from there by every API process.
    secret_key: str = ""
    secret_key_file: Path = Path("var/secret-key")
    # Where `make setup` writes the first API key of a fresh local install.
    api_key_file: Path = Path("var/api-key")
    # Browsers open an event stream without headers: its URL carries a token that opens it
    # for this long. A stream already open goes on past it.
    events_token_seconds: int = Field(default=600, gt=0)

    # Tables that may be imported into: `table`, `schema.table`, or `schema.*`.
    import_targets: Annotated[list[str], NoDecode] = ["public.customers"]
    max_upload_bytes: int = Field(default=10 * 1024**3, gt=0)
    # A compressed upload (gzip, bzip2, xz, zstd) is unpacked into storage while it streams,
    # to at most this many bytes, and to at most this many times its own size (413 beyond).
    max_uncompressed_bytes: int = Field(default=50 * 1024**3, gt=0)
    max_compression_ratio: float = Field(default=100.0, gt=1)
    # An upload that sends nothing for this long is given up on (408).
    upload_idle_seconds: float = Field(default=60.0, gt=0)

    # Loading: rows per committed batch, and how long one task may load before it hands
    # the job on to a continuation message (keeps every delivery far from the broker's
    # consumer timeout).
    batch_rows: int = Field(default=50_000, gt=0)
    # Off, every record goes the careful way (to measure it, or to rule the fast path out).
    fast_path: bool = True
    segment_seconds: float = Field(default=60.0, gt=0)
    # An append of a file up to this size goes straight into the target in one transaction
    # on its first attempt: PostgreSQL writes each row once instead of twice (staging, then
    # the target). It has no checkpoints and does not pause: if that attempt dies or runs
    # into the soft time limit, the next one stages. 1 GiB loads in about a minute, far
    # below the soft time limit.
    one_transaction_max_bytes: int = Field(default=1024**3, ge=0)
    # A new job whose file is at most this size goes to the express queue, which a worker
    # process of its own serves: small imports never wait behind big ones.
    express_max_bytes: int = Field(default=16 * 1024**2, ge=0)
    # Worker processes of `python -m server.run worker` (each loads one job at a time).
    worker_concurrency: int = Field(default=2, gt=0)
    soft_time_limit_seconds: int = 300
    hard_time_limit_seconds: int = 360
    # A stuck statement returns before the soft time limit fires.
    statement_timeout_seconds: int = 240
    # How long a worker waits for a job that another worker holds before it leaves it to
    # that worker (a killed worker's lock takes a moment to be released).
    lock_wait_seconds: float = Field(default=10.0, ge=0)

    # Broker: how long a job may wait for a worker before it is dead-lettered, how many
    # times one delivery may be redelivered (crashed workers) before it is, and the
    # broker-side waits between retries of transient faults.
    work_message_ttl_seconds: int = 24 * 3600
    delivery_limit: int = 5
    retry_delays_seconds: Annotated[list[int], NoDecode] = [5, 30, 120, 600]
    max_retries: int = 6

    # Webhooks: a delivery that fails waits in the broker this long before each next
    # attempt (the last delay's failure dead-letters it); each attempt gives up after
    # `webhook_timeout_seconds`.
    webhook_retry_delays_seconds: Annotated[list[int], NoDecode] = [5, 30, 300, 1800, 7200]
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    # Outbound requests (webhooks) never reach private, loopback, link-local or other
    # non-public addresses, except in these networks (comma-separated CIDRs).
    outbound_allow_networks: Annotated[list[IPNetwork], NoDecode] = []

    # Jobs committed but never confirmed by the broker are published again by a sweeper.
    publish_sweep_seconds: float = 15.0
    publish_grace_seconds: float = 30.0
    # Worker processes beat in Redis this often, and show as gone when they miss beats for
    # `worker_gone_seconds` (GET /workers). A queued or running job that no live worker
    # holds, without progress for `lost_after_seconds` and with no message waiting in any
    # queue, lost its message (a purge, a broker that lost its data): the sweeper publishes
    # it again (at most `max_retries` times). Above the longest retry delay.
    worker_beat_seconds: float = Field(default=5.0, gt=0)
    worker_gone_seconds: float = Field(default=20.0, gt=0)
    lost_after_seconds: float = Field(default=900.0, gt=0)

    # Each tenant's share (0: no limit): uploads a minute (a token bucket in Redis), bytes its
    # jobs hold in storage; over either, an upload gets 429 with Retry-After.
    tenant_uploads_per_minute: int = Field(default=6000, ge=0)
    # Jobs of one tenant loading at once; the next one's message waits in the broker
    # (`imports.wait.<N>s`, N = TENANT_WAIT_SECONDS) and comes back, so that another
    # tenant's job starts first. Not a retry: it never counts towards MAX_RETRIES.
    tenant_max_running: int = Field(default=4, ge=0)
    tenant_wait_seconds: int = Field(default=5, gt=0)
    tenant_max_stored_bytes: int = Field(default=100 * 1024**3, ge=0)

    # Housekeeping: a finished job's file, staged rows and progress keys go after
    # `retention_seconds` (a failed job can be replayed until then); its record and refused
    # rows after `record_retention_seconds`.
    housekeeping_seconds: float = 300.0
    # A dry run's validated job waits this long for its commit, then is cancelled.
    validated_ttl_seconds: float = Field(default=24 * 3600, ge=0)
    retention_seconds: int = 7 * 24 * 3600
    record_retention_seconds: int = 90 * 24 * 3600

    # Test seam, never set in production: the process kills itself at this point.
    crash_at: CrashPoint | None = None

    @field_validator("import_targets", mode="before")
    @classmethod
    def _split_targets(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("outbound_allow_networks", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        if isinstance(value, str):
            return [ip_network(part.strip()) for part in value.split(",") if part.strip()]
        return value

    @field_validator("retry_delays_seconds", "webhook_retry_delays_seconds", mode="before")
    @classmethod
    def _split_delays(cls, value: object) -> object:
        if isinstance(value, str):
            return [int(part) for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _limits_are_ordered(self) -> Settings:
        limits = (
            self.statement_timeout_seconds,
            self.soft_time_limit_seconds,
            self.hard_time_limit_seconds,
            BROKER_CONSUMER_TIMEOUT_SECONDS,
        )
        if not all(a < b for a, b in pairwise(limits)):
            raise ValueError(
                "need statement timeout < soft time limit < hard time limit "
                f"< broker consumer timeout ({BROKER_CONSUMER_TIMEOUT_SECONDS}s), got {limits[:3]}"
            )
        if self.segment_seconds >= self.soft_time_limit_seconds:
            raise ValueError("segment_seconds must be below soft_time_limit_seconds")
        if not self.retry_delays_seconds or not self.webhook_retry_delays_seconds:
            raise ValueError("retry_delays_seconds needs at least one delay")
        return self

    @model_validator(mode="after")
    def _secret_is_safe(self) -> Settings:
        if self.secret_key and len(self.secret_key) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"secret_key must be at least {MIN_SECRET_LENGTH} random "
                "characters (python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))')"
            )
        return self

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.api_host}:{self.api_port}"

    @property
    def management_url(self) -> str:
        """RabbitMQ's management UI, beside the broker."""
        parts = urlsplit(self.broker_url)
        port = (parts.port or 5672) + MANAGEMENT_PORT_OFFSET
        return f"http://{parts.hostname or '127.0.0.1'}:{port}/"


@lru_cache
def get_settings() -> Settings:
    return Settings()
