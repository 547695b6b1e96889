"""perpdesk: order and position management for crypto spot and perpetual futures."""
