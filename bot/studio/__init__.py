"""The local studio chat: a web page at /studio where anyone can type as a viewer or as the
creator and see the bot's replies, countdowns and ticks live. It is one more platform
adapter on the same command layer; nothing in it is special-cased."""
