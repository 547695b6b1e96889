"""app.domain stays pure: standard library and app.domain imports only."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import app.domain

DOMAIN_DIR = Path(app.domain.__file__).resolve().parent
FORBIDDEN = ("fastapi", "starlette", "sqlmodel", "sqlalchemy", "jinja2", "httpx", "asyncio",
             "pydantic", "app.engine", "app.venues", "app.store", "app.api", "app.web")


def _module_name(path: Path) -> str:
    rel = path.relative_to(DOMAIN_DIR.parent.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package_of(path: Path) -> str:
    name = _module_name(path)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def imported_modules(source: str, path: Path) -> list[str]:
    """Every module a file imports, with relative imports resolved."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package_of(path).split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append(module)
            # ``from app import engine`` imports app.engine
            found.extend(f"{module}.{alias.name}" for alias in node.names
                         if alias.name != "*" and module in ("app", "app.domain"))
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("__import__", "import_module"):
                found.append("<dynamic import>")
    return found


def _is_forbidden(module: str) -> bool:
    return any(module == f or module.startswith(f + ".") for f in FORBIDDEN)


def _is_allowed(module: str) -> bool:
    if _is_forbidden(module):
        return False
    if module == "app.domain" or module.startswith("app.domain."):
        return True
    top = module.split(".")[0]
    return top in sys.stdlib_module_names and top != "app"


def violations(source: str, path: Path) -> list[str]:
    return [m for m in imported_modules(source, path) if not _is_allowed(m)]


DOMAIN_FILES = sorted(DOMAIN_DIR.rglob("*.py"))


def test_domain_modules_are_found():
    names = {p.name for p in DOMAIN_FILES}
    assert {"orders.py", "positions.py", "accounts.py", "instruments.py", "trading_state.py",
            "commands.py", "events.py", "market.py", "rejections.py"} <= names


@pytest.mark.parametrize("path", DOMAIN_FILES, ids=lambda p: p.name)
def test_domain_module_imports_only_stdlib_and_domain(path: Path):
    source = path.read_text(encoding="utf-8")
    modules = imported_modules(source, path)
    assert not [m for m in modules if _is_forbidden(m)], f"{path.name} imports forbidden modules"
    assert violations(source, path) == [], f"{path.name} imports outside stdlib/app.domain"


def test_checker_catches_what_it_should():
    fake = DOMAIN_DIR / "fake.py"
    source = "\n".join([
        "import fastapi",
        "import asyncio",  # stdlib, but forbidden here
        "from sqlmodel import Field",
        "from starlette.responses import Response",
        "import jinja2, httpx",
        "from pydantic import BaseModel",
        "from sqlalchemy.orm import Session",
        "from app.engine.engine import Engine",
        "from ..venues import paper",  # resolves to app.venues
        "from app import store",
        "import app.api",
        "from app.web import views",
        "import importlib",
        "importlib.import_module('somewhere')",
        "import numpy",  # third party
        "def f():",
        "    import sortedcontainers",  # nested imports count too
        "from decimal import Decimal",
        "from .orders import Side",
        "from app.domain.positions import Position",
    ])
    found = violations(source, fake)
    assert sorted(found) == sorted([
        "fastapi", "asyncio", "sqlmodel", "starlette.responses", "jinja2", "httpx", "pydantic",
        "sqlalchemy.orm", "app.engine.engine", "app.venues", "app", "app.store", "app.api",
        "app.web", "<dynamic import>", "numpy", "sortedcontainers",
    ])


def test_importing_the_domain_loads_nothing_forbidden():
    code = (
        "import pkgutil, importlib, sys, app.domain\n"
        "for m in pkgutil.walk_packages(app.domain.__path__, 'app.domain.'):\n"
        "    importlib.import_module(m.name)\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout.split()
    assert "app.domain.orders" in out
    assert [m for m in out if _is_forbidden(m)] == []
