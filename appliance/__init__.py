"""callmesh appliance: the edge services of a branch, hotel or SIM-gateway box."""
