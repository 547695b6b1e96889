"""The use cases, one function each, and the read side.

Every caller — the REST routes, the order lane, the web pages, the CLI and the
strategy host — goes through these modules and nothing below them:

    orders       place, cancel, replace, cancel-all
    controls     the kill switches: set a trading state, close-all
    positions    close one position
    accounts     deposit, withdraw, set leverage
    admin        users and API keys
    queries      every read, scoped by the caller; the venue-neutral market view
    strategies   create, start, stop, reconfigure strategies on the host

Each use case returns its result or raises ``ServiceError`` (app/services/errors.py).
"""
