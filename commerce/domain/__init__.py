"""The domain: value objects, events (past tense) and errors with stable codes."""
