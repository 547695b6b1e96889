"""``perpdesk monitor`` arguments: the subcommand the CLI wires in, and ``main``."""

from __future__ import annotations

import argparse

import pytest

from app.monitor import add_parser, main, run


def cli() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="perpdesk")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def test_monitor_subcommand_defaults():
    args = cli().parse_args(["monitor", "--key", "pdk_x"])
    assert args.run is run
    assert (args.url, args.key, args.client, args.rows) == (
        "http://127.0.0.1:8000", "pdk_x", None, 10)
    assert not args.once and not args.no_screen


def test_monitor_subcommand_options():
    args = cli().parse_args(["monitor", "--url", "http://h:9", "--key", "k", "--client", "demo",
                             "--rows", "5", "--exits", "50", "--scroll-seconds", "2.5",
                             "--no-screen", "--once"])
    assert (args.url, args.client, args.rows, args.exits, args.scroll_seconds) == (
        "http://h:9", "demo", 5, 50, 2.5)
    assert args.once and args.no_screen


@pytest.mark.parametrize("bad", [["--rows", "0"], ["--rows", "x"], ["--scroll-seconds", "0"]])
def test_bad_values_are_refused(bad, capsys):
    with pytest.raises(SystemExit) as exc:
        cli().parse_args(["monitor", "--key", "k", *bad])
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def test_a_key_is_required(monkeypatch, capsys):
    monkeypatch.delenv("PERPDESK_API_KEY", raising=False)
    assert main(["--url", "http://127.0.0.1:1"]) == 2
    assert "API key" in capsys.readouterr().out


def test_unreachable_server_with_once_reports_and_fails(capsys, monkeypatch):
    # Port 1 refuses: the snapshot says so in words, and the exit code says it failed.
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["--url", "http://127.0.0.1:1", "--key", "k", "--once"]) == 1
    out = capsys.readouterr().out
    said = " ".join(out.split())  # however the terminal width wrapped it
    assert "REST: cannot connect to http://127.0.0.1:1 (connection refused)" in said
    assert "Connect…" not in out and "ConnectError" not in out
    assert "trading: unknown" in out  # not "active": the state never loaded
    assert "seq —" in out  # never reached: no sequence, rather than a made-up 0
