"""The PBX: SIP edge supervision, call events to CDRs, recordings."""
