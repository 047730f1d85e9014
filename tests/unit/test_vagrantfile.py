"""The Vagrant VM: the Vagrantfile parses, and the demo it runs at boot advertises its address."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.procs import ROOT

VAGRANTFILE = ROOT / "Vagrantfile"
UNIT = ROOT / "image" / "vagrant" / "callmesh-demo.service"


def demo_ip() -> str:
    found = re.search(r'^DEMO_IP = "([0-9.]+)"$', VAGRANTFILE.read_text(), re.MULTILINE)
    assert found, "the Vagrantfile names the VM's address as DEMO_IP"
    return found.group(1)


def test_the_vagrantfile_is_valid_ruby() -> None:
    if shutil.which("ruby") is None:
        pytest.skip("ruby is not installed (./run test installs it)")
    checked = subprocess.run(["ruby", "-c", str(VAGRANTFILE)], capture_output=True, text=True,
                             timeout=30, check=False)  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.strip() == "Syntax OK"


def test_the_vm_has_a_private_network_and_a_demo_that_survives_a_reboot() -> None:
    text = VAGRANTFILE.read_text()
    assert 'config.vm.network "private_network", ip: DEMO_IP' in text
    assert '--public-ip "$DEMO_IP"' in text
    assert "install -m 0644 image/vagrant/callmesh-demo.service /etc/systemd/system/" in text
    assert "systemctl enable callmesh-demo.service" in text


def test_the_boot_unit_starts_the_demo_on_the_vm_address_and_stops_it() -> None:
    unit = UNIT.read_text()
    assert "--public-ip ${CALLMESH_DEMO_IP}" in unit
    assert "EnvironmentFile=/etc/default/callmesh-demo" in unit
    assert "WantedBy=multi-user.target" in unit
    start = re.search(r"^ExecStart=\S+ demo --dir (\S+)", unit, re.MULTILINE)
    stop = re.search(r"^ExecStop=\S+ demo --dir (\S+) --stop$", unit, re.MULTILINE)
    assert start
    assert stop
    assert start.group(1) == stop.group(1)


def test_the_readme_names_the_address_phones_register_to() -> None:
    assert f"{demo_ip()}:5060" in (ROOT / "README.md").read_text()
