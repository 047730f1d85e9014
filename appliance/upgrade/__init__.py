"""``callmesh upgrade``: install a new release of the callmesh packages, or roll back.

Theory of operation: the release's packages are checked (callmesh packages, one version,
this architecture, the SHA-256 published with them) and nothing is touched until they
pass. The running version's packages are kept (``releases``) so there is always one to go
back to. The new packages are installed with apt; the services that were running are
restarted by the packages (or here, if they were not) and must pass the health check
(each unit active without restarts, the appliance's ``/healthz`` answering 200, the new
``callmesh doctor --offline`` reporting no failure) within the timeout. A release that
fails is replaced by the kept one, which must pass the same check. Every attempt is
logged to the journal and appended to ``upgrades.json`` in the data directory, whose
last entry the appliance reports to HQ in its sync ``status``.

Everything this package needs is imported before the new release is installed: the
install replaces the files of this very package.

Errors (each carries a stable ``error_id`` and a next step)::

    UpgradeError
    ├── ReleaseError   the packages given cannot be installed here (checksum, names,
    │                  versions, architecture, nothing to roll back to)
    └── HealthError    the new release failed its health check (rolled back) or the
                       rollback failed too
"""

from appliance.upgrade.errors import HealthError, ReleaseError, UpgradeError
from appliance.upgrade.record import UpgradeAttempt, UpgradeLog, UpgradeStatus

__all__ = [
    "HealthError",
    "ReleaseError",
    "UpgradeAttempt",
    "UpgradeError",
    "UpgradeLog",
    "UpgradeStatus",
]
