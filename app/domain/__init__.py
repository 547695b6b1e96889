"""Pure domain values and rules.

Standard library only: no framework, database, templating or asyncio imports
(``tests/domain/test_purity.py`` enforces it). Money, prices and quantities
are ``Decimal`` everywhere.
"""
