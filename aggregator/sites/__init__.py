"""HQ sites: who connected, when, with what software and health."""
