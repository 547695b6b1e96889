"""The strategy host and the strategy kinds.

    base       the ``Strategy`` protocol, the context a strategy reads and asks
               through, and ``StrategyKind`` (a kind's parameters and factory)
    registry   the registered kinds, by name
    host       ``StrategyHost``: runs the running strategies inside the single
               writer, between engine steps, on the engine's clock
    demo       the demo trader of ``perpdesk simulate`` (kind ``demo``)
"""
