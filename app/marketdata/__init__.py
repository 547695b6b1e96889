"""Market-data feeds: sources of ``app.domain.market.MarketUpdate`` values.

Every feed yields updates in non-decreasing ``ts`` order (aware UTC) with
``Decimal`` prices and sizes. ``synthetic`` is the embedded, seeded default;
``replay`` reads the recorded files in ``../shared/data``; ``bars`` reads
OHLCV and funding files of any interval; ``binance_depth`` and ``bybit_book``
check order-book sequence numbers (a gap yields ``BookInvalidated``).
"""

from app.marketdata.bars import (
    detect_interval,
    parse_interval,
    read_bars,
    read_funding_rates,
)
from app.marketdata.binance_depth import (
    BinanceDepthAssembler,
    assemble_binance_depth,
    read_binance_depth,
)
from app.marketdata.bybit_book import BybitBookAssembler
from app.marketdata.replay import (
    default_data_dir,
    merge_by_time,
    parse_ts,
    read_binance_quotes,
    read_binance_trades,
    read_bybit_book,
    read_funding_series,
    read_perp_bars,
)
from app.marketdata.synthetic import (
    SyntheticMarket,
    default_initial_price,
    next_funding_at,
    quote_ticks,
)

__all__ = [
    "BinanceDepthAssembler",
    "BybitBookAssembler",
    "SyntheticMarket",
    "assemble_binance_depth",
    "default_data_dir",
    "default_initial_price",
    "detect_interval",
    "merge_by_time",
    "next_funding_at",
    "parse_interval",
    "parse_ts",
    "quote_ticks",
    "read_bars",
    "read_binance_depth",
    "read_binance_quotes",
    "read_binance_trades",
    "read_bybit_book",
    "read_funding_rates",
    "read_funding_series",
    "read_perp_bars",
]
