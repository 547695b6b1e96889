"""Scenarios: seed 003's stage-3 stop-limit protocol and seed 000's three sandbox
scenarios, run against the paper venues with the engine, the risk controls and the
built-in strategies as they are, each ending in a checklist of PASS / FAIL / N/A
lines (``perpdesk scenario``).

- ``stage3`` (app/scenarios/stage3.py): non-crossing stop-limit orders per symbol
  at seed 003's sizes and 2 % offset, monitored, re-armed, reported.
- ``sandbox-btc``, ``sandbox-eth``, ``sandbox-multi`` (app/scenarios/sandbox_*.py):
  seed 000 §4.1's scenarios with the ``ma_crossover`` strategy, then seed 000
  §4.2's validation checklist (app/scenarios/seed000.py).
"""
