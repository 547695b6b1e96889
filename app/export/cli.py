"""``perpdesk export``: seed 003's artifacts of a server's run, from its database's
event log (see ``app/export/artifacts.py``)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

SCHEMAS = Path(__file__).resolve().parent / "schemas"


def parse_time(text: str) -> datetime:
    """ISO 8601; a time without a zone is UTC."""
    t = datetime.fromisoformat(text)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def run(args: argparse.Namespace) -> int:
    from app.config import Settings
    from app.export.artifacts import ExportFilter, export

    try:
        where = ExportFilter(args.client,
                             parse_time(args.since) if args.since else None,
                             parse_time(args.until) if args.until else None)
        url = args.database_url or Settings().database_url
        counts = export(url, Path(args.out).expanduser(), where)
    except (OSError, ValueError) as exc:
        print(f"perpdesk export: {exc}", file=sys.stderr)
        return 2
    for name, n in counts.items():
        print(f"{name}: {n}")
    print(f"artifacts: {args.out}")
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("export", help="write seed 003's artifacts from a database",
                            description=__doc__)
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--client", help="only this client's records")
    p.add_argument("--from", dest="since", metavar="TIME",
                   help="events at or after this ISO 8601 time (UTC if no zone)")
    p.add_argument("--to", dest="until", metavar="TIME", help="events before this time")
    p.add_argument("--database-url", help="default: PERPDESK_DATABASE_URL or ./perpdesk.db")
    p.set_defaults(run=run)
