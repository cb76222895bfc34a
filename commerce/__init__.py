"""dropcast's platform-agnostic core: domain, services, storage, payments, analytics, web.

Nothing under ``commerce`` imports discord, twitchio or apscheduler; aiohttp only under
``commerce.web`` (tests/unit/test_architecture.py enforces it).
"""
