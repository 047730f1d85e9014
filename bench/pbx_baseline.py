"""The PBX benchmark's raw baseline: Kamailio with a minimal script and rtpengine, no appliance.

Run as the benchmark's ``--serve-baseline`` child: rtpengine under the product's own
driver (``RtpengineDriver``, the options the PBX gives it) and Kamailio under the
product's supervisor (``Daemon``, probed by OPTIONS) with ``kamailio_baseline.cfg.tmpl``
instead of the product's script. Files, pid files and logs go where the PBX puts its
own (``DATA/pbx/run``), so the benchmark measures both the same way.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "kamailio_baseline.cfg.tmpl"


@dataclass(frozen=True)
class BaselineConfig:
    """What the minimal script needs: where it listens, rtpengine's ng port, the password."""

    sip_port: int
    ng_port: int
    domain: str
    password: str
    children: int
    module_path: str


def render(config: BaselineConfig) -> str:
    """The minimal kamailio.cfg for ``config``."""
    text = TEMPLATE.read_text()
    values = {
        "SIP_PORT": str(config.sip_port),
        "NG_PORT": str(config.ng_port),
        "DOMAIN": config.domain,
        "PASSWORD": config.password,
        "CHILDREN": str(config.children),
        "MODULE_PATH": config.module_path,
    }
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", value)
    return text


class BaselineKamailio:
    """Kamailio running the minimal script under the product's supervisor."""

    name = "kamailio"

    def __init__(self, run_dir: Path, config: BaselineConfig) -> None:
        from drivers.sip.probe import sip_options_ok
        from drivers.sip.supervisor import Daemon

        self._run_dir = run_dir
        self._config = config
        self._cfg = run_dir / "kamailio.cfg"

        async def ready() -> bool:
            return await sip_options_ok("127.0.0.1", config.sip_port)

        self.daemon = Daemon(
            "kamailio", self._argv, run_dir / "kamailio.log", ready, run_dir / "kamailio.pid"
        )

    def _argv(self) -> list[str]:
        binary = shutil.which("kamailio") or "kamailio"
        return [
            binary, "-DD", "-E", "-f", str(self._cfg), "-P", str(self._run_dir / "kamailio.pid"),
            "-Y", str(self._run_dir), "-m", "64", "-M", "8",
        ]  # fmt: skip

    async def start(self) -> None:
        """Write the script and start Kamailio (ready when it answers OPTIONS)."""
        self._run_dir.mkdir(parents=True, exist_ok=True)
        self._cfg.write_text(render(self._config))
        await self.daemon.start()

    async def stop(self) -> None:
        """Terminate Kamailio."""
        await self.daemon.stop()


async def serve(data: dict[str, Any], password: str) -> None:
    """Run rtpengine and the minimal Kamailio for the benchmark's config until signalled."""
    from appliance.pbx.daemons import rtpengine_config, run_dir, spool_dir
    from appliance.pbx.settings import PbxSettings
    from drivers.daemon.lifecycle import run_until_signalled
    from drivers.daemon.logs import configure_logging
    from drivers.sip.kamailio import find_module_path
    from drivers.sip.rtpengine import RtpengineDriver

    pbx = PbxSettings.model_validate(data["pbx"])
    data_dir = Path(data["data_dir"])
    configure_logging("info")
    config = BaselineConfig(
        sip_port=pbx.sip_port,
        ng_port=pbx.rtpengine_ng_port,
        domain=data["sip"]["domain"],
        password=password,
        children=pbx.kamailio_children,
        module_path=find_module_path(),
    )
    rtpengine = RtpengineDriver(run_dir(data_dir), rtpengine_config(pbx, spool_dir(data_dir)))
    await run_until_signalled([rtpengine, BaselineKamailio(run_dir(data_dir), config)])
