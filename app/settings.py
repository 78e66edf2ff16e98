"""The one settings object of the service.

Every value comes from an environment variable named ``FRAUDSCORE_<FIELD>`` (case-insensitive)
and has an embedded default that works on a fresh machine with no setup: Kafka on
127.0.0.1:9092, all state and data under ``./var/``.

Every secret (a ``SecretStr`` field) can also come from a file named by
``FRAUDSCORE_<FIELD>_FILE`` (Docker and Kubernetes secrets): the file's content, without its
trailing newline. Setting both the variable and the file is refused.

Build it through :func:`get_settings` (cached); tests clear the cache after changing the
environment. Nothing here is created at import time.
"""

from __future__ import annotations

import os
import typing
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from app.errors import SettingsError
from features.card import FeatureParams
from features.merchant import MerchantRiskParams
from features.stream import StreamParams

ENV_PREFIX = "FRAUDSCORE_"


def secret_fields(settings_cls: type[BaseSettings]) -> list[str]:
    """The names of the settings that hold secrets."""
    return [
        name
        for name, field in settings_cls.model_fields.items()
        if field.annotation is SecretStr or SecretStr in typing.get_args(field.annotation)
    ]


class SecretFileSource(PydanticBaseSettingsSource):
    """``FRAUDSCORE_<SECRET>_FILE=path``: the secret is the file's content."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads every file at once

    def __call__(self) -> dict[str, Any]:
        environ = {name.upper(): value for name, value in os.environ.items()}
        values: dict[str, Any] = {}
        for name in secret_fields(self.settings_cls):
            variable = f"{ENV_PREFIX}{name.upper()}"
            path = environ.get(f"{variable}_FILE")
            if path is None:
                continue
            if variable in environ:
                raise SettingsError(f"set {variable} or {variable}_FILE, not both")
            try:
                values[name] = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as exc:
                raise SettingsError(
                    f"{variable}_FILE names {path!r}, which cannot be read: {exc.strerror}"
                ) from exc
        return values


class FraudscoreSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, SecretFileSource(settings_cls), dotenv_settings)

    # --- Kafka --------------------------------------------------------------------------
    kafka_bootstrap: str = Field(
        default="127.0.0.1:9092", description="Kafka bootstrap servers (host:port[,host:port])"
    )
    input_topic: str = Field(
        default="transactions", description="Card transactions, keyed by card token"
    )
    decisions_topic: str = Field(
        default="decisions", description="Scoring decisions (transactional)"
    )
    dlq_topic: str = Field(
        default="transactions.dlq", description="Rejected input: original bytes plus reason headers"
    )
    late_topic: str = Field(
        default="transactions.late",
        description="Copies of late transactions: original key and bytes, source in headers",
    )
    changelog_topic: str = Field(
        default="fraudscore.card-state.changelog",
        description="Compacted changelog of per-card state; one partition per input partition",
    )
    labels_topic: str = Field(
        default="labels",
        description="Late verdicts on transactions (chargebacks, reviews), keyed by card token",
    )
    labels_dlq_topic: str = Field(
        default="labels.dlq",
        description="Rejected labels: original bytes (card numbers masked) plus reason and source "
        "headers",
    )
    group_id: str = Field(default="fraudscore", description="Consumer group of the workers")
    service_name: str = Field(
        default="fraudscore", description="Prefix of the workers' transactional ids"
    )
    partitions: int = Field(default=4, ge=1, description="Partitions created for the input topic")

    instance_id: str | None = Field(
        default=None,
        description="Static group membership id (KIP-345): a restarted worker with the same id "
        "gets its partitions back at once instead of after the session timeout",
    )
    session_timeout_ms: int = Field(
        default=10_000, ge=1000, description="A silent worker leaves the group after this long"
    )

    # --- Kafka security (docs/SECURITY.md; applied in sinks/kafka_security.py) ------------
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        description="How every Kafka client of the service connects: SSL is TLS (with a "
        "client certificate for mutual TLS), SASL_SSL is TLS plus SASL, SASL_PLAINTEXT is SASL "
        "without TLS",
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        default="SCRAM-SHA-512",
        description="SASL mechanism with SASL_SSL or SASL_PLAINTEXT (PLAIN only over TLS "
        "outside dev: it sends the password as it is)",
    )
    kafka_sasl_username: str | None = Field(
        default=None, description="SASL user name (required with a SASL protocol)"
    )
    kafka_sasl_password: SecretStr | None = Field(
        default=None,
        description="SASL password (a secret, never logged; or "
        "FRAUDSCORE_KAFKA_SASL_PASSWORD_FILE)",
    )
    kafka_ssl_ca_file: Path | None = Field(
        default=None,
        description="PEM file of the CA certificates the brokers' certificates are verified "
        "with (SSL, SASL_SSL); unset: the system's trust store",
    )
    kafka_ssl_cert_file: Path | None = Field(
        default=None,
        description="PEM client certificate for mutual TLS (with kafka_ssl_key_file)",
    )
    kafka_ssl_key_file: Path | None = Field(
        default=None, description="PEM private key of the client certificate"
    )
    kafka_ssl_key_password: SecretStr | None = Field(
        default=None,
        description="Password of an encrypted client key (a secret, never logged; or "
        "FRAUDSCORE_KAFKA_SSL_KEY_PASSWORD_FILE)",
    )

    # --- Checkpoints ----------------------------------------------------------------------
    checkpoint_interval_ms: int = Field(
        default=10,
        ge=1,
        description="Longest time a processed record waits for its checkpoint",
    )
    checkpoint_max_records: int = Field(
        default=2000,
        ge=1,
        description="Checkpoint once this many records are open across the worker's partitions",
    )
    transaction_timeout_ms: int = Field(
        default=10_000,
        ge=1000,
        description="Broker aborts a transaction left open this long by a dead worker",
    )
    processing_guarantee: Literal["exactly_once", "at_least_once"] = Field(
        default="exactly_once",
        description="exactly_once: checkpoints are Kafka transactions; at_least_once: outputs "
        "are flushed and offsets committed without a transaction (benchmark baseline)",
    )
    failpoints: str = Field(
        default="",
        description="Testing only: SIGKILL the worker at the Nth pass of a checkpoint step "
        "(see app/failpoint.py)",
    )
    fetch_max_records: int = Field(
        default=2000, ge=1, description="Records per fetch across partitions"
    )
    fetch_wait_ms: int = Field(
        default=5,
        ge=0,
        description="Longest time the broker holds the worker's fetch to gather more records "
        "(fewer, fuller fetches: less CPU in the broker and the worker)",
    )

    # --- Input validation -------------------------------------------------------------------
    max_record_bytes: int = Field(
        default=8192, ge=256, description="Larger input records are dead-lettered as oversized"
    )

    # --- Event time (features.stream) --------------------------------------------------------
    max_out_of_orderness_ms: int = Field(
        default=5_000,
        ge=0,
        le=3_600_000,
        description="Watermark = newest event time seen in the partition minus this; the exact "
        "windows are exact for transactions at most this far behind their card's newest",
    )
    allowed_lateness_ms: int = Field(
        default=0,
        ge=0,
        description="Transactions older than the watermark minus this are flagged late, "
        "counted and copied to the late topic (still decided)",
    )
    card_state_ttl_ms: int = Field(
        default=45 * 86_400_000,
        ge=86_400_000 + 3_600_000,
        description="A card with no transaction for this long in event time (behind the "
        "watermark) is removed from state and tombstoned in the changelog",
    )

    # --- Merchant risk from labels (features.merchant) ----------------------------------------
    merchant_risk_delay_days: int = Field(
        default=7,
        ge=0,
        le=365,
        description="The merchant windows end this many days before the start of the scored "
        "transaction's UTC day (labels of recent transactions are not known yet)",
    )
    merchant_risk_max_staleness_days: int = Field(
        default=2,
        ge=0,
        le=30,
        description="When the snapshot of a transaction's day is not published, a snapshot at "
        "most this many days older is used (recorded in the decision); older: none",
    )
    merchant_risk_label_lateness_ms: int = Field(
        default=3_600_000,
        ge=0,
        lt=86_400_000,
        description="The aggregator publishes snapshot d once it has seen a label reported this "
        "long after the start of day d-1 (its cut-off): labels may arrive this much out of order",
    )
    merchant_risk_snapshot_retention_days: int = Field(
        default=400,
        ge=31,
        description="The aggregator deletes merchant snapshots of days more than this before "
        "its newest snapshot (label time, not the clock); replay needs the snapshots of the "
        "days it replays, the audit rows keep the features either way",
    )
    merchant_risk_checkpoint_interval_ms: int = Field(
        default=1000,
        ge=1,
        description="Longest time a label read by the aggregator waits for its checkpoint",
    )

    # --- Decision policy --------------------------------------------------------------------
    review_threshold: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Score at which to REVIEW"
    )
    decline_threshold: float = Field(
        default=0.85, ge=0.0, le=1.0, description="Score at which to DECLINE"
    )

    # --- Model -------------------------------------------------------------------------------
    model_path: Path | None = Field(
        default=None,
        description="Directory of a model artefact written by `fraudscore train` for the worker "
        "to load; unset: train the built-in default model at start (about 4 s)",
    )

    # --- Audit trail (Iceberg) ---------------------------------------------------------------
    audit_catalog_uri: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the Iceberg SQL catalog (sqlite:///… or "
        "postgresql+psycopg2://…); default: SQLite file <var_dir>/audit/catalog.db",
    )
    audit_warehouse: str | None = Field(
        default=None,
        description="Where the audit table's data and metadata files go; default: "
        "file://<var_dir>/audit/warehouse",
    )
    audit_catalog_password: SecretStr | None = Field(
        default=None,
        description="Password of the catalog URL's user (a secret, never logged; or "
        "FRAUDSCORE_AUDIT_CATALOG_PASSWORD_FILE): keeps it out of the URL",
    )
    audit_s3_endpoint: str | None = Field(
        default=None,
        description="S3-compatible endpoint of an s3:// warehouse (e.g. http://minio:9000); "
        "unset: AWS S3",
    )
    audit_s3_region: str = Field(
        default="us-east-1",
        min_length=1,
        description="Region of the warehouse bucket (never looked up: no call to AWS)",
    )
    audit_s3_access_key_id: str | None = Field(
        default=None, description="Access key id for the warehouse bucket"
    )
    audit_s3_secret_access_key: SecretStr | None = Field(
        default=None,
        description="Secret access key for the warehouse bucket (a secret, never logged; or "
        "FRAUDSCORE_AUDIT_S3_SECRET_ACCESS_KEY_FILE)",
    )
    audit_s3_path_style_access: bool = Field(
        default=True,
        description="Address buckets as endpoint/bucket/key (MinIO and most S3-compatible "
        "stores); false: virtual-hosted bucket.endpoint/key",
    )
    audit_table: str = Field(default="fraud.decisions", description="The audit table")
    audit_table_properties: dict[str, str] = Field(
        default={
            "commit.manifest-merge.enabled": "true",
            "write.parquet.row-group-limit": "20000",
            "write.target-file-size-bytes": "134217728",
        },
        description="Iceberg table properties of the audit table (JSON); the sink always adds "
        "commit.retry.num-retries=0. Row groups of 20,000 rows (pyiceberg's default: "
        "1,048,576) let a card's or a transaction's lookup in a compacted day read a few; "
        "128 MiB of Arrow per file (pyiceberg's default: 512 MiB) bounds a day's compaction "
        "to ~0.9 GB of memory (~2.7 GB at 512 MiB; docs/AUDIT.md)",
    )
    audit_group_id: str = Field(
        default="fraudscore-audit",
        description="Consumer group the audit sink commits its offsets to, for monitoring only",
    )
    audit_checkpoint_interval_ms: int = Field(
        default=30_000, ge=1, description="Longest time between audit commits while busy"
    )
    audit_checkpoint_max_records: int = Field(
        default=50_000, ge=1, description="Commit to the audit table after this many decisions"
    )
    audit_maintenance_interval_s: float = Field(
        default=300.0,
        ge=0,
        description="The audit sink tags closed days and expires snapshots this often, between "
        "its checkpoints (first run one interval after start); 0: never (run `fraudscore "
        "audit maintain` instead). On by default: without expiry commit latency grows with "
        "every retained snapshot",
    )
    audit_maintenance_keep: int = Field(
        default=100, ge=1, description="Snapshots of the main line the sink's expiry keeps"
    )
    audit_maintenance_min_age_s: float = Field(
        default=3600.0, ge=0, description="The sink's expiry never expires younger snapshots"
    )
    audit_compaction_interval_s: float = Field(
        default=21_600.0,
        ge=0,
        description="The audit sink compacts closed event days and removes orphan files this "
        "often (it rewrites a whole day, and again after late decisions for it); 0: never",
    )
    audit_orphan_min_age_h: float = Field(
        default=72.0,
        ge=1,
        description="Orphan files younger than this are kept (a writer's files exist before "
        "its commit references them)",
    )

    # --- Registry database -------------------------------------------------------------------
    database_url: SecretStr | None = Field(
        default=None,
        description="SQLAlchemy URL of the registry database (sqlite:///… or "
        "postgresql+psycopg2://user:password@host/db); unset: SQLite file <var_dir>/fraudscore.db",
    )
    database_password: SecretStr | None = Field(
        default=None,
        description="Password of the registry URL's user (a secret, never logged; or "
        "FRAUDSCORE_DATABASE_PASSWORD_FILE): keeps it out of the URL",
    )
    registry_poll_ms: int = Field(
        default=2000,
        ge=50,
        description="How often a worker checks the registry for a newly promoted model or policy",
    )

    # --- Deployment and the REST API (app/api, `fraudscore api`) ------------------------------
    environment: Literal["dev", "test", "staging", "production"] = Field(
        default="dev",
        description="Where this runs. Only in dev may the API verify tokens with the built-in "
        "development key (when no key is configured); outside dev, placeholder secrets are "
        "refused",
    )
    api_host: str = Field(default="127.0.0.1", description="Address the API listens on")
    api_port: int = Field(default=8000, ge=1, le=65535, description="Port the API listens on")
    api_max_body_bytes: int = Field(
        default=65_536, ge=1024, description="Larger request bodies are refused with 413"
    )
    api_jwt_issuer: str = Field(
        default="fraudscore-dev", min_length=1, description="The `iss` every token must have"
    )
    api_jwt_audience: str = Field(
        default="fraudscore-api", min_length=1, description="The `aud` every token must name"
    )
    api_jwt_secret: SecretStr | None = Field(
        default=None,
        description="Shared HS256 secret the tokens are signed with (development; at least 32 "
        "bytes outside dev); set at most one of this, api_jwks_file and api_jwks_url",
    )
    api_jwks_file: Path | None = Field(
        default=None, description="JSON Web Key Set file of the issuer's public keys"
    )
    api_jwks_url: str | None = Field(
        default=None, description="URL of the issuer's JSON Web Key Set (fetched and cached)"
    )
    api_jwt_leeway_s: int = Field(
        default=30, ge=0, le=300, description="Clock skew tolerated on exp, nbf and iat"
    )
    api_kafka_timeout_ms: int = Field(
        default=5_000,
        ge=100,
        description="Longest wait of POST /v1/labels for the broker to acknowledge the label",
    )

    api_request_timeout_ms: int = Field(
        default=10_000,
        ge=100,
        description="Longest time any API request may take before it is answered 504 (the "
        "work left behind is abandoned; an audit SQL query is interrupted)",
    )

    api_card_owner_cache_ms: int = Field(
        default=1_000,
        ge=0,
        description="How long the API caches the consumer group's assignment to find the "
        "worker that owns a card's partition (refreshed early when an owner is missing)",
    )
    api_forward_timeout_ms: int = Field(
        default=500,
        ge=10,
        description="Longest wait of GET /v1/cards/{card_id}/features for the owning worker",
    )

    # --- Observability (docs/OBSERVABILITY.md) -------------------------------------------------
    log_format: Literal["auto", "json", "text"] = Field(
        default="auto",
        description="Log lines as one JSON object each (json) or as plain text (text); auto: "
        "text in the dev environment, JSON everywhere else",
    )
    worker_http_host: str = Field(
        default="127.0.0.1",
        description="Address of a worker's HTTP endpoint (/metrics, /healthz, /readyz)",
    )
    worker_http_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Port of a worker's HTTP endpoint; 0: a free port, chosen at start and "
        "logged (several workers on one host never collide)",
    )
    worker_http_advertised_url: str | None = Field(
        default=None,
        description="The URL of a worker's HTTP endpoint as the API reaches it (advertised in "
        "its consumer's client.id for card-feature lookups); default: the address it is "
        "bound to",
    )
    audit_http_host: str = Field(
        default="127.0.0.1",
        description="Address of the audit sink's HTTP endpoint (/metrics, /healthz, /readyz)",
    )
    audit_http_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Port of the audit sink's HTTP endpoint; 0: a free port, chosen and logged",
    )

    # --- Local files ----------------------------------------------------------------------
    var_dir: Path = Field(default=Path("var"), description="Root of all local state and data")
    state_memory_mb: int = Field(
        default=256,
        ge=16,
        description="Memory budget of all the RocksDB stores of a process (one per partition): "
        "one block cache of this size, the memtables charged to it and flushed at half of it",
    )
    kafka_version: str = Field(
        default="3.9.1", description="Apache Kafka version fetched from Maven"
    )
    kafka_cache_dir: Path = Field(
        default=Path.home() / ".cache" / "fraudscore" / "kafka",
        description="Where the broker's jars are cached between runs",
    )
    model_cache_dir: Path = Field(
        default=Path.home() / ".cache" / "fraudscore" / "models",
        description="Where the built-in default model is kept after its first training",
    )
    kafka_heap: str = Field(default="768m", description="Heap of the local broker (-Xmx)")

    @model_validator(mode="after")
    def _kafka_security_is_complete(self) -> FraudscoreSettings:
        """Refuse a Kafka security set-up that cannot connect or would leak the password."""
        protocol = self.kafka_security_protocol
        sasl, tls = protocol.startswith("SASL_"), protocol.endswith("SSL")
        if sasl and (self.kafka_sasl_username is None or self.kafka_sasl_password is None):
            raise ValueError(
                f"kafka_security_protocol {protocol} needs FRAUDSCORE_KAFKA_SASL_USERNAME and "
                "FRAUDSCORE_KAFKA_SASL_PASSWORD (or FRAUDSCORE_KAFKA_SASL_PASSWORD_FILE)"
            )
        if sasl and not tls and self.kafka_sasl_mechanism == "PLAIN" and self.environment != "dev":
            raise ValueError(
                "SASL PLAIN without TLS sends the Kafka password in clear: use SASL_SSL (or a "
                "SCRAM mechanism) outside the dev environment"
            )
        tls_files = (self.kafka_ssl_ca_file, self.kafka_ssl_cert_file, self.kafka_ssl_key_file)
        if not tls and any(f is not None for f in tls_files):
            raise ValueError(
                f"FRAUDSCORE_KAFKA_SSL_* files are set but kafka_security_protocol is {protocol}: "
                "use SSL or SASL_SSL for them to be used"
            )
        if (self.kafka_ssl_cert_file is None) != (self.kafka_ssl_key_file is None):
            raise ValueError(
                "mutual TLS needs both FRAUDSCORE_KAFKA_SSL_CERT_FILE and "
                "FRAUDSCORE_KAFKA_SSL_KEY_FILE"
            )
        return self

    @property
    def state_dir(self) -> Path:
        """Per-partition RocksDB databases."""
        return self.var_dir / "state"

    @property
    def kafka_dir(self) -> Path:
        """Local broker: config, data, log and PID file."""
        return self.var_dir / "kafka"

    @property
    def audit_dir(self) -> Path:
        """The default audit catalog (SQLite) and warehouse."""
        return self.var_dir / "audit"

    @property
    def sql_url(self) -> str:
        """The registry database's URL, credentials included: never log it (see
        ``app.db.engine.safe_url``)."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.var_dir / 'fraudscore.db'}"

    @property
    def json_logs(self) -> bool:
        """Whether log lines are JSON (``log_format``; auto: everywhere but in dev)."""
        if self.log_format == "auto":
            return self.environment != "dev"
        return self.log_format == "json"

    @property
    def exactly_once(self) -> bool:
        return self.processing_guarantee == "exactly_once"

    @property
    def stream_params(self) -> StreamParams:
        """The event-time parameters of the pipeline (one place for max_out_of_orderness)."""
        features = FeatureParams(max_out_of_orderness_ms=self.max_out_of_orderness_ms)
        return StreamParams(
            features=features,
            allowed_lateness_ms=self.allowed_lateness_ms,
            card_state_ttl_ms=self.card_state_ttl_ms,
        )

    @property
    def merchant_params(self) -> MerchantRiskParams:
        return MerchantRiskParams(
            delay_days=self.merchant_risk_delay_days,
            max_staleness_days=self.merchant_risk_max_staleness_days,
        )

    def transactional_id(self, worker_id: str) -> str:
        """The transactional id of the worker ``worker_id`` (see app/worker.py)."""
        return f"{self.service_name}.{self.input_topic}.{worker_id}"


@lru_cache
def get_settings() -> FraudscoreSettings:
    return FraudscoreSettings()
