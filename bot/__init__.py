"""Chat adapters: one command parser and presenter, thin Discord / Twitch / studio adapters."""
