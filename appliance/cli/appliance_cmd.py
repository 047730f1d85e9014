"""`callmesh appliance ...`: run an appliance or check its configuration."""

from __future__ import annotations

import argparse

from drivers.daemon.service_cli import add_service_actions, run_service, show_config


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `callmesh appliance`."""
    parser = sub.add_parser(
        "appliance",
        help="run an appliance (branch, hotel or SIM gateway)",
        description="Run an edge appliance or check its configuration.",
    )
    add_service_actions(parser, "appliance", _run, _config)


def _run(args: argparse.Namespace) -> int:
    from appliance import service
    from appliance.ivr.validate import FlowInvalidError
    from appliance.pbx.dialplan import DialPlanError
    from appliance.settings import ApplianceSettings
    from appliance.store import StoreError
    from drivers.sip.errors import SipDriverError

    return run_service(
        ApplianceSettings,
        service.run,
        args,
        expected=(StoreError, SipDriverError),
        config_errors=(DialPlanError, FlowInvalidError),
    )


def _config(args: argparse.Namespace) -> int:
    from appliance.settings import ApplianceSettings

    return show_config(ApplianceSettings, args)
