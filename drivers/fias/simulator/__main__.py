"""``python -m drivers.fias.simulator``: the same as ``callmesh pms-simulator``."""

import argparse
import sys

from drivers.fias.simulator import cli

parser = argparse.ArgumentParser(prog="pms-simulator", description=cli.DESCRIPTION)
cli.add_arguments(parser)
sys.exit(cli.run(parser.parse_args()))
