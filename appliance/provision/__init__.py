"""`callmesh provision`: site identity, network, extensions and modems, then the doctor.

Everything is checked before anything is written (answers, the extensions CSV, the
merged configuration); then the site's drop-in, the WireGuard key, the networkd files
and the live network are brought to what the answers say, each only if it differs, so
running provision again with the same answers changes nothing (docs/provision.md).

Exceptions::

    ProvisionError    a bad answer or a failed step; ``error_id`` says which, the message
                      what to fix
"""


class ProvisionError(Exception):
    """Provisioning stopped; the message says what to fix."""

    def __init__(self, error_id: str, message: str) -> None:
        super().__init__(message)
        self.error_id = error_id
        self.message = message
