"""``python -m drivers.modem.simulator``: the simulator without the rest of the callmesh CLI."""

import argparse
import sys

from drivers.modem.simulator.cli import add_arguments, run

parser = argparse.ArgumentParser(
    prog="python -m drivers.modem.simulator", description="Simulate GSM/LTE modems on pty pairs."
)
add_arguments(parser)
sys.exit(run(parser.parse_args()))
