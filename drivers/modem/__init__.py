"""callmesh modem."""
