"""Chat and danmaku pipeline and moderation: domain logic, no socket or HTTP code."""
