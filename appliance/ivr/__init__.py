"""IVR flows as data: model, validation, the pure engine, storage, service and routes."""
