"""The routing directory at HQ: sites, numbering, trunks and rules, compiled per site."""
