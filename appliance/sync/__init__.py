"""The appliance's side of the sync link: drains outboxes to the aggregator."""
