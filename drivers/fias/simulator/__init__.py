"""A PMS simulator of our own: a FIAS IFC (server side) with rooms, guests and an HTTP control."""
