"""The appliance's durable store: one LMDB environment with an outbox and a state area."""

from appliance.store.environment import Store, StoreError, StoreFullError, StoreOpenError
from appliance.store.outbox import Outbox
from appliance.store.state import StateStore

__all__ = ["Outbox", "StateStore", "Store", "StoreError", "StoreFullError", "StoreOpenError"]
