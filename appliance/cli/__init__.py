"""callmesh cli."""
