"""The aggregator's store: SQLAlchemy Core over SQLite (default) or PostgreSQL."""
