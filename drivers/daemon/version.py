"""The callmesh release every process reports (API, sync hello, --version)."""

__version__ = "0.1.0"
