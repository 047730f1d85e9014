"""The demo deployment: real services on loopback, described by a manifest."""
