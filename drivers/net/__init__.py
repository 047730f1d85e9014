"""Appliance network set-up through netlink (pyroute2): plan, apply, verify.

The plan is pure (``plan.py``: desired state + current state -> actions); only
``netlink.py`` talks to the kernel. Exceptions::

    NetError
     ├── NetUnsupported     the kernel lacks a link kind (VLAN, WireGuard)
     └── NetApplyError      the kernel refused a change; the message names the action
"""


class NetError(Exception):
    """Base of the network driver's errors."""


class NetUnsupported(NetError):
    """This kernel cannot create the requested kind of link."""


class NetApplyError(NetError):
    """A change was refused by the kernel."""
