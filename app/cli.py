"""The ``perpdesk`` command line."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="perpdesk", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    if argv[:1] == ["backtest"]:
        # Only what a backtest needs: the server's modules (auth store, database,
        # configuration) cost half a second to import, a tenth of a short backtest.
        from app.backtest import cli as backtest_cli

        backtest_cli.add_parser(commands)
    else:
        _add_every_command(commands)
    args = parser.parse_args(argv)
    return int(args.run(args) or 0)


def _add_every_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from app import admin_cli, monitor, simulate
    from app.backtest import cli as backtest_cli
    from app.export import cli as export_cli
    from app.scenarios import cli as scenario_cli

    admin_cli.add_parsers(commands)
    monitor.add_parser(commands)
    simulate.add_parser(commands)
    backtest_cli.add_parser(commands)
    export_cli.add_parser(commands)
    scenario_cli.add_parser(commands)


if __name__ == "__main__":
    sys.exit(main())
