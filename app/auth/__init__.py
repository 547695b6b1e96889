"""Who is calling and what they may do: API keys, user logins, roles, client scope."""
