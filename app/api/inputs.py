"""The input rules: every value a caller sends is bounded here, before it can reach
the engine or the database.

A value that breaks a rule is a 422 ``VALIDATION_ERROR`` naming the field. The
rules (the README's "Input rules" lists them for callers):

* **Decimals** (prices, quantities, amounts) are plain decimal text: digits with
  an optional fraction, as a JSON string (a whole JSON number such as ``5`` is
  accepted too; one with a fraction is not: it was already rounded to binary
  floating point by the JSON parser). No exponent (``1e3``), no sign, no spaces
  around, no ``NaN`` or ``Infinity``; at most ``MAX_DECIMAL_TEXT`` characters,
  ``MAX_INTEGER_DIGITS`` digits before the point (leading zeros aside) and
  ``MAX_FRACTION_DIGITS`` after it, as written: a value keeps the precision the
  caller wrote (``"59000.0"`` is echoed as ``"59000.0"``), and padding it with
  zeros past the limit is refused rather than silently cut. So every product the
  engine forms (notional = qty x price) stays exact in Python's 28-digit context.
* **Names** (client, venue, symbol, strategy and signal ids, client order ids)
  are ASCII letters, digits and ``. _ : / -``, starting with a letter or digit,
  with a length that fits their database column.
* **Free text** (a kill switch's reason) has no control, format, surrogate or
  private-use characters (``\\x00``, bidi overrides, lone surrogates...) and a
  bounded length.
* **Integers** (order ids, cursors, sequence numbers) lie in 0..2^63-1, the range
  of the database's BIGINT.
* **Instants** (``expire_at``) carry a UTC offset and lie in the years 2000-2999
  once in UTC; they are kept in UTC.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    Field,
    StringConstraints,
    WithJsonSchema,
)

MAX_DECIMAL_TEXT = 40
MAX_INTEGER_DIGITS = 12
MAX_FRACTION_DIGITS = 12
MAX_INT = 2**63 - 1  # BIGINT

NAME_MAX = 64
SYMBOL_MAX = 32
COID_MAX = 36
REASON_MAX = 500

# What the OpenAPI schema advertises (the parser also takes leading and trailing zeros).
AMOUNT_PATTERN = r"^[0-9]{1,12}(\.[0-9]{1,12})?$"
_PLAIN_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$"
COID_PATTERN = r"^[A-Za-z0-9._:/-]{1,36}$"
# Unicode categories no human-written text needs: control (Cc, \x00 included),
# format (Cf: bidi overrides, zero-width marks that disguise text in an audit log),
# surrogates (Cs: a lone one cannot even be encoded as UTF-8) and private use (Co).
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co"})


def parse_decimal(value: Any) -> Decimal:
    """A caller's decimal, by the rules above; ``ValueError`` says which one it broke."""
    if isinstance(value, bool):
        raise ValueError("must be a decimal number as a string, e.g. \"0.001\"")
    if isinstance(value, int):
        value = str(value)
    elif isinstance(value, float):
        # A JSON number with a fraction has already been rounded to binary floating
        # point by the time it is parsed: money must not take that path.
        raise ValueError("send decimals as JSON strings (\"0.1\", not 0.1): a JSON number "
                         "with a fraction loses precision")
    elif isinstance(value, Decimal):
        value = format(value, "f") if value.is_finite() else str(value)
    if not isinstance(value, str):
        raise ValueError("must be a decimal number as a string, e.g. \"0.001\"")
    if len(value) > MAX_DECIMAL_TEXT:
        raise ValueError(f"at most {MAX_DECIMAL_TEXT} characters")
    if not _PLAIN_DECIMAL.fullmatch(value):
        raise ValueError("must be plain decimal notation: digits with an optional fraction "
                         "(no sign, exponent or spaces), e.g. \"0.001\"")
    whole, _, fraction = value.partition(".")
    if len(whole.lstrip("0")) > MAX_INTEGER_DIGITS:
        raise ValueError(f"at most {MAX_INTEGER_DIGITS} digits before the decimal point")
    if len(fraction) > MAX_FRACTION_DIGITS:
        raise ValueError(f"at most {MAX_FRACTION_DIGITS} digits after the decimal point")
    return Decimal(value)


def check_text(value: str) -> str:
    """Free text without invisible or unencodable characters."""
    for ch in value:
        if unicodedata.category(ch) in _FORBIDDEN_CATEGORIES:
            raise ValueError(f"contains a control or invisible character (U+{ord(ch):04X})")
    return value


# A price, quantity or amount by the rules, above zero; the schema shows a string.
PositiveAmount = Annotated[
    Decimal, BeforeValidator(parse_decimal), Field(gt=0),
    WithJsonSchema({"type": "string", "pattern": AMOUNT_PATTERN,
                    "not": {"pattern": r"^0*(\.0*)?$"}, "examples": ["0.001"]})]


def check_instant(value: datetime) -> datetime:
    """A point in time the engine can compute with: in UTC, years 2000 to 2999 (a
    far-future offset like 9999-12-31T23:59:59-01:00 has no UTC year)."""
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range") from None
    if not 2000 <= utc.year <= 2999:
        raise ValueError("must lie between the years 2000 and 2999 (UTC)")
    return utc


Instant = Annotated[AwareDatetime, AfterValidator(check_instant)]

Name = Annotated[str, StringConstraints(min_length=1, max_length=NAME_MAX,
                                        pattern=NAME_PATTERN)]
SymbolName = Annotated[str, StringConstraints(min_length=1, max_length=SYMBOL_MAX,
                                              pattern=NAME_PATTERN)]
ClientOrderId = Annotated[str, StringConstraints(pattern=COID_PATTERN)]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=REASON_MAX),
                   AfterValidator(check_text)]

# Path and query parameters.
OrderIdPath = Annotated[int, Path(ge=1, le=MAX_INT)]
ClientQuery = Annotated[str | None, Query(min_length=1, max_length=NAME_MAX,
                                          pattern=NAME_PATTERN)]
VenueQuery = ClientQuery
SymbolQuery = Annotated[str | None, Query(min_length=1, max_length=SYMBOL_MAX,
                                          pattern=NAME_PATTERN)]
CursorQuery = Annotated[int | None, Query(ge=1, le=MAX_INT,
                                          description="next_cursor from the previous page")]
IdQuery = Annotated[int | None, Query(ge=1, le=MAX_INT)]
SeqQuery = Annotated[int, Query(ge=0, le=MAX_INT)]
