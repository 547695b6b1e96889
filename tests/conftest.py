"""Fixtures every test folder may use."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.marketdata.replay import default_data_dir


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real market data of ``../shared/data`` (or ``PERPDESK_DATA_DIR``)."""
    path = default_data_dir()
    if not path.is_dir():
        pytest.skip(f"real market data not found at {path} (set PERPDESK_DATA_DIR)")
    return path
