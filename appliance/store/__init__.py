"""The appliance's durable store: one LMDB environment with an outbox and a state area."""

from appliance.store.environment import Store, StoreError, StoreFullError, StoreOpenError
from appliance.store.group import GroupCommit, Staged
from appliance.store.outbox import Outbox
from appliance.store.state import StateStore

__all__ = [
    "GroupCommit",
    "Outbox",
    "Staged",
    "StateStore",
    "Store",
    "StoreError",
    "StoreFullError",
    "StoreOpenError",
]
