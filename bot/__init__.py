"""Chat: one command layer and one presenter shared by every platform; each chat platform
(Discord, Twitch, the local studio) is a plugin behind ``bot.platform``, listed in
``bot.platforms``."""
