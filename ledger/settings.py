"""Configuration, read once from the environment."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEDGER_", extra="ignore")

    database_url: str = f"sqlite:///{Path.cwd() / 'ledger.db'}"
    redis_url: str | None = None
    rule_set: str = "ai-diffusion-2025"
    # Ed25519 private key (PEM path) that signs every write's new head (ledger.heads) and
    # checkpoints; unset: heads unsigned.
    signing_key_path: str | None = None
    # Retired public keys (a PEM file, or a folder of *.pem), still accepted when
    # verifying heads signed before a key rotation.
    signing_public_keys: str | None = None
    # Witnesses of signed heads outside the database (ledger.witness): an append-only
    # file (one JSON line per head, fsynced by a background thread) and/or
    # comma-separated URLs that receive the latest head (POST, retried with backoff).
    witness_file: str | None = None
    witness_webhooks: str | None = None
    # Abuse throttle: requests per minute per API key (0 turns it off). Generous,
    # so benchmarks are not throttled; it protects, it never enforces quota.
    rate_limit_per_minute: int = 6000
    # PostgreSQL only: `ledger serve` runs the group commit in one separate writer process
    # (ledger.writer_process) instead of a thread of each HTTP process.
    writer_process: bool = False
    # Set by `ledger serve` for its HTTP workers: the writer process's Unix socket.
    writer_socket: str | None = None

    # Scheduled jobs (jobs/). Whether the API process runs the scheduler in its
    # lifespan: `ledger serve` turns it on (embedded default) unless the environment
    # says LEDGER_JOBS_IN_SERVE=false (production, where `ledger jobs` runs them).
    # Off by default so test apps never fire background jobs.
    jobs_in_serve: bool = False
    # Seconds between runs per job, overriding jobs.registry defaults,
    # e.g. LEDGER_JOBS_INTERVALS='{"expire_holds": 30}'.
    jobs_intervals: dict[str, int] = {}
    # How long a leader lock lives unless renewed (a crashed runner frees it after this).
    jobs_lock_ttl_seconds: int = 300
    # Prefix of Redis lock keys (lets several ledgers share one Redis).
    jobs_lock_prefix: str = "ledger:jobs:"
    # Whether the scheduled reconciliation repairs projection drift (else it only reports).
    reconcile_repair: bool = False
    # Folder watched for shipment feeds (CSV / JSON lines); unset: no watch.
    shipment_inbox: str | None = None
    # A committed reservation with no shipment after this many days is a finding.
    shipment_deadline_days: int = 30
    # Comma-separated webhook URLs that receive threshold alerts; unset: alerts only recorded.
    alert_webhooks: str | None = None
    # Delivery attempts per alert and URL before it is marked failed.
    alert_max_attempts: int = 8


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
