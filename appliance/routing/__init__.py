"""Cross-site routing on the appliance: the table in force and the PBX's lookup."""

from appliance.routing.service import RoutingService
from appliance.routing.table import RouteDecision, RoutingTable, RoutingTableError, Target

__all__ = ["RouteDecision", "RoutingService", "RoutingTable", "RoutingTableError", "Target"]
