"""Settings: a TOML file plus DROPCAST_<SECTION>__<KEY> environment overrides."""

from config.settings import ConfigError, Settings, load_settings

__all__ = ["ConfigError", "Settings", "load_settings"]
