"""The asyncio side: the command bus, feeds, the broadcaster, start-up and recovery."""
