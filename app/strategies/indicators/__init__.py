"""Incremental technical indicators, in ``Decimal``.

Each indicator takes one new value (or bar) at a time and keeps only what its
window needs, so a strategy's cost per bar does not grow with its history. All
arithmetic is ``Decimal`` (the default 28-digit context): prices, stops and
targets derived from them go into orders, and a float round trip could move a
stop by a tick between the server and a replay on another machine.

Conventions (the usual ones of TA-Lib and most charting tools; the tests check
each against a pandas computation of the same definition on real BTC bars):

* ``SMA(n)``: mean of the last n values.
* ``EMA(n)``: alpha = 2 / (n + 1), seeded with the SMA of the first n values.
* ``RSI(n)`` (Wilder): average gain and loss seeded with the mean of the first n
  changes, then smoothed with alpha = 1 / n; 100 when there was no loss.
* ``ATR(n)`` (Wilder): true range max(high − low, |high − prev close|,
  |low − prev close|) (the first bar: high − low), seeded with the mean of the
  first n true ranges, then smoothed with alpha = 1 / n.
* ``ReturnsStdev(n)``: sample standard deviation (n − 1) of the last n simple
  returns close / previous close − 1.

``value`` is None until the indicator has seen enough input (``ready``).
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal

ZERO = Decimal(0)
ONE = Decimal(1)
HUNDRED = Decimal(100)


def _check_period(period: int) -> int:
    if period < 1:
        raise ValueError(f"period must be at least 1, not {period}")
    return period


class SMA:
    """Simple moving average over the last ``period`` values (a running sum)."""

    __slots__ = ("_sum", "_window", "period", "value")

    def __init__(self, period: int):
        self.period = _check_period(period)
        self._window: deque[Decimal] = deque()
        self._sum = ZERO
        self.value: Decimal | None = None

    @property
    def ready(self) -> bool:
        return self.value is not None

    def update(self, x: Decimal) -> Decimal | None:
        self._window.append(x)
        self._sum += x
        if len(self._window) > self.period:
            self._sum -= self._window.popleft()
        if len(self._window) == self.period:
            self.value = self._sum / self.period
        return self.value


class _SeededSmoothing:
    """An exponential smoothing seeded with the SMA of its first ``period`` values
    (what pandas' ``adjust=False`` recursions and the textbook definitions start
    from); each kind says how one value moves it (``_step``)."""

    __slots__ = ("_seed", "period", "value")

    def __init__(self, period: int):
        self.period = _check_period(period)
        self._seed: SMA | None = SMA(period)
        self.value: Decimal | None = None

    @property
    def ready(self) -> bool:
        return self.value is not None

    def update(self, x: Decimal) -> Decimal | None:
        if self._seed is not None:
            self.value = self._seed.update(x)
            if self.value is not None:
                self._seed = None
            return self.value
        assert self.value is not None
        self.value = self._step(self.value, x)
        return self.value

    def _step(self, value: Decimal, x: Decimal) -> Decimal:
        raise NotImplementedError


class EMA(_SeededSmoothing):
    """Exponential moving average, alpha = 2 / (period + 1), seeded with an SMA."""

    __slots__ = ("alpha",)

    def __init__(self, period: int):
        super().__init__(period)
        self.alpha = Decimal(2) / (period + 1)

    def _step(self, value: Decimal, x: Decimal) -> Decimal:
        return value + self.alpha * (x - value)


class Wilder(_SeededSmoothing):
    """Wilder's smoothing (an EMA with alpha = 1 / period), seeded with an SMA."""

    __slots__ = ()

    def _step(self, value: Decimal, x: Decimal) -> Decimal:
        return (value * (self.period - 1) + x) / self.period


class RSI:
    """Wilder's relative strength index over ``period`` changes (0..100)."""

    __slots__ = ("_gain", "_loss", "_previous", "period", "value")

    def __init__(self, period: int = 14):
        self.period = _check_period(period)
        self._gain = Wilder(period)
        self._loss = Wilder(period)
        self._previous: Decimal | None = None
        self.value: Decimal | None = None

    @property
    def ready(self) -> bool:
        return self.value is not None

    def update(self, close: Decimal) -> Decimal | None:
        previous, self._previous = self._previous, close
        if previous is None:
            return None
        change = close - previous
        gain = self._gain.update(change if change > 0 else ZERO)
        loss = self._loss.update(-change if change < 0 else ZERO)
        if gain is None or loss is None:
            return None
        if loss == 0:
            self.value = HUNDRED if gain > 0 else Decimal(50)
        else:
            self.value = HUNDRED - HUNDRED / (ONE + gain / loss)
        return self.value


class ATR:
    """Wilder's average true range over ``period`` bars."""

    __slots__ = ("_avg", "_previous_close", "period", "value")

    def __init__(self, period: int = 14):
        self.period = _check_period(period)
        self._avg = Wilder(period)
        self._previous_close: Decimal | None = None
        self.value: Decimal | None = None

    @property
    def ready(self) -> bool:
        return self.value is not None

    def update(self, high: Decimal, low: Decimal, close: Decimal) -> Decimal | None:
        tr = true_range(high, low, self._previous_close)
        self._previous_close = close
        self.value = self._avg.update(tr)
        return self.value


def true_range(high: Decimal, low: Decimal, previous_close: Decimal | None) -> Decimal:
    if previous_close is None:
        return high - low
    return max(high - low, abs(high - previous_close), abs(low - previous_close))


class ReturnsStdev:
    """Sample standard deviation of the last ``period`` simple returns (period >= 2).

    Kept as running sums of the window's returns and their squares; the sums
    are rebuilt from the window every ``period`` steps so rounding cannot pile up.
    """

    __slots__ = ("_previous", "_steps", "_sum", "_sum_sq", "_window", "period", "value")

    def __init__(self, period: int = 20):
        if period < 2:
            raise ValueError(f"period must be at least 2, not {period}")
        self.period = period
        self._window: deque[Decimal] = deque()
        self._sum = ZERO
        self._sum_sq = ZERO
        self._previous: Decimal | None = None
        self._steps = 0
        self.value: Decimal | None = None

    @property
    def ready(self) -> bool:
        return self.value is not None

    def update(self, close: Decimal) -> Decimal | None:
        previous, self._previous = self._previous, close
        if previous is None or previous == 0:
            return self.value
        r = close / previous - ONE
        self._window.append(r)
        self._sum += r
        self._sum_sq += r * r
        if len(self._window) > self.period:
            old = self._window.popleft()
            self._sum -= old
            self._sum_sq -= old * old
        self._steps += 1
        if self._steps % self.period == 0:
            self._sum = sum(self._window, ZERO)
            self._sum_sq = sum((x * x for x in self._window), ZERO)
        n = len(self._window)
        if n < self.period:
            return None
        variance = (self._sum_sq - self._sum * self._sum / n) / (n - 1)
        self.value = variance.sqrt() if variance > 0 else ZERO
        return self.value
