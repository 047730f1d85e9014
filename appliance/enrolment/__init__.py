"""Enrolment of a box with HQ by one-time code (`callmesh enrol`, docs/enrolment.md)."""
