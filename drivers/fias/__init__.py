"""FIAS (Oracle Hospitality IFC8) link to a hotel PMS: sans-I/O core, link state, adapters."""
