"""Process runtime shared by every callmesh service: config layering, logging, HTTP, lifecycle."""
