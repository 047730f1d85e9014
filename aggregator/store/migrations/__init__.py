"""Alembic migrations of the aggregator's store (run by aggregator/store/migrate.py)."""
