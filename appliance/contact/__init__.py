"""The contact centre: ACD queues and agents (docs/contact-centre.md)."""
