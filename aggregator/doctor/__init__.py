"""The sites' doctor reports at HQ: stored from the sync link, served to the API and console.

``store`` (the slice's only SQL: the newest report per site), ``sync`` (the
``doctor-report`` handler), ``routes`` (``GET /api/v1/sites/{id}/doctor``); docs/doctor.md.
"""
