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
    # Ed25519 private key (PEM path) for signed checkpoints; unset: checkpoints unsigned.
    signing_key_path: str | None = None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
