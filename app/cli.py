"""The ``perpdesk`` command line."""

from __future__ import annotations

import argparse
import sys

from app import admin_cli, monitor, simulate
from app.backtest import cli as backtest_cli
from app.export import cli as export_cli
from app.scenarios import cli as scenario_cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="perpdesk", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    admin_cli.add_parsers(commands)
    monitor.add_parser(commands)
    simulate.add_parser(commands)
    backtest_cli.add_parser(commands)
    export_cli.add_parser(commands)
    scenario_cli.add_parser(commands)
    args = parser.parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
