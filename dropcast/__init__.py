"""The composition root and the ``dropcast`` command line."""
