"""Enrolment: one-time codes an admin creates, sites enrol with them, keys ZAP admits."""
