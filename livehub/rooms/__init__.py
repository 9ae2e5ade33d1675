"""Rooms, roles, tokens, presence, the state store and the durable event log."""
