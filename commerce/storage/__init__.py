"""Storage: SQLAlchemy 2 Core tables, the Database wrapper, migrations."""
