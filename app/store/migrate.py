"""Schema migrations (Alembic) run from code: the server migrates on start."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_URL = "sqlite:///./perpdesk.db"


def database_url() -> str:
    return os.environ.get("PERPDESK_DATABASE_URL", DEFAULT_URL)


def alembic_config(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["url"] = url
    return config


def upgrade(url: str) -> None:
    """Bring the database at ``url`` to the latest schema."""
    command.upgrade(alembic_config(url), "head")
