"""The aggregator's typed, frozen settings."""

from __future__ import annotations

from pydantic import Field

from drivers.runtime.settings_base import ApiToken, HttpSettings, Section, ServiceSettings


class DatabaseSettings(Section):
    """The report store: SQLite in the data directory unless a URL is given."""

    url: str | None = Field(None, description="SQLAlchemy URL, e.g. postgresql://user@host/db")


class ApiSettings(Section):
    """HQ API access."""

    tokens: tuple[ApiToken, ...] = ()


class AggregatorSettings(ServiceSettings):
    """Everything the aggregator reads from its configuration."""

    http: HttpSettings = HttpSettings(port=8800)
    database: DatabaseSettings = DatabaseSettings()
    api: ApiSettings = ApiSettings()

    def database_url(self) -> str:
        """The SQLAlchemy URL in force."""
        return self.database.url or f"sqlite:///{self.data_dir / 'aggregator.db'}"
