"""A media worker reports a tagged leg's end even when its prompt can no longer be stopped.

Under load the worker handles a call's DISCONNECTED after pjsua took the call's port off
the bridge: stopping the prompt then fails with PJ_EINVAL. The owner of the leg (a wake-up
call waiting for its outcome) must still get ``leg ended`` at once. The worker runs in its
own process with a real pjsua2 endpoint, as in production; only the ended call and its
prompt are stand-ins, built to fail the way pjsua2 does.
"""

from __future__ import annotations

import os
import subprocess
import sys

from drivers.media.protocol import LegEvent, Load, parse_event
from tests.integration.pbx.harness import free_udp_tcp_port
from tests.procs import ROOT

SCRIPT = """
import os, sys
import pjsua2 as pj
from drivers.media.protocol import WorkerConfig
from drivers.media.worker import Leg, Worker, start_endpoint

class PortGone:
    def stopTransmit(self, sink):
        err = pj.Error()
        err.status, err.title = 70004, "pjsua_conf_disconnect(id, sink.id)"
        err.reason = "Invalid value or argument (PJ_EINVAL)"
        raise err

class EndedCall:
    def getId(self):
        return 3

port = int(sys.argv[1])
config = WorkerConfig(name="t", host="127.0.0.1", port=port, proxy_host="127.0.0.1",
                      proxy_port=port + 1, domain="test.local", media_host="127.0.0.1")
worker = Worker(config, start_endpoint(config))
call = EndedCall()
leg = Leg(call, "ivr", "wakeup", "wakeup-1")
leg.source, leg.audio = PortGone(), object()
worker.legs[3] = leg
worker.later(lambda: worker.state(call, pj.PJSIP_INV_STATE_DISCONNECTED, 200, "Normal"))
worker.run_queue()
print("legs left", len(worker.legs), flush=True)
os._exit(0)
"""


def test_a_leg_whose_prompt_left_the_bridge_with_the_call_is_still_reported_ended() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(free_udp_tcp_port())],
        capture_output=True, text=True, timeout=30, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    events = [e for e in map(parse_event, done.stdout.splitlines()) if e is not None]
    ended = [e for e in events if isinstance(e, LegEvent)]
    assert ended == [LegEvent("wakeup-1", "ended", code=200, reason="Normal", answered=False)], (
        done.stdout
    )
    assert "legs left 0" in done.stdout
    assert Load(calls=0, capacity=4) in events
