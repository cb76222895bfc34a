"""Use cases. Each public coroutine is one command or query, run in its own transaction."""
