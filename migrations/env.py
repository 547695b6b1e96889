"""Alembic environment: migrates the database named by PERPDESK_DATABASE_URL
(or the URL the server passes in), defaulting to the embedded SQLite file."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import app.store.tables  # noqa: F401  (registers the tables on SQLModel.metadata)
from app.store.event_log import make_db_engine
from app.store.migrate import database_url

config = context.config
url = config.attributes.get("url") or database_url()


def run_offline() -> None:
    context.configure(url=url, target_metadata=SQLModel.metadata, literal_binds=True,
                      render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = make_db_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=SQLModel.metadata,
                          render_as_batch=url.startswith("sqlite"))
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
