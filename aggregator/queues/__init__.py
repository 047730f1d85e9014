"""Queue and agent reports at HQ: ``report`` (queues, from the rollups), ``agents`` (the
agent state log), ``agent_sync`` (the log's sync stream) and ``routes`` (the API)."""
