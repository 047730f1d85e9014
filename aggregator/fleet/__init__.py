"""The SIM fleet at HQ: status from sites, operator commands, usage reports, company DNC."""
