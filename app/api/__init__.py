"""REST API v1 and the scripts' WebSocket: thin routers over the command bus."""
