"""callmesh appliance: the edge services of a branch, hotel or SIM-gateway box."""

__version__ = "0.1.0"
