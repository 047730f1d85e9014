"""callmesh aggregator."""
