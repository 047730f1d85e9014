"""Outbound compliance for API and campaign calls: do-not-call lists, attempts, calling hours."""

from appliance.compliance.service import ComplianceService, Decision

__all__ = ["ComplianceService", "Decision"]
