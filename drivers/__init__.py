"""callmesh drivers."""
