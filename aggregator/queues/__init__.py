"""Queue and agent reports at HQ: ``report`` (queues, from the rollups), ``agents`` (the
agent state log), ``agent_sync`` (the log's sync stream), ``answer_times`` (answered
calls by wait, from the rollups), ``lost`` (lost calls and whether the caller was
reached), ``zones`` (``tz=site``) and ``routes`` (the API)."""
