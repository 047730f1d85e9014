"""The route answer and the Kamailio script that reads it name exactly the same keys.

The appliance answers Kamailio's route query with ``Decision.wire()``; the script decodes
the answer once and reads it back with one ``$var(<key>) = $xavp(answer=><key>)`` per key
(``route[ANSWER]``). A key the
answer gains that the script never reads is a feature that silently does nothing; a key
the script reads that the answer lacks is an empty variable in every call.
"""

from __future__ import annotations

import re

from appliance.pbx.dialplan import Decision
from tests.procs import ROOT

TEMPLATE = ROOT / "drivers" / "sip" / "kamailio.cfg.tmpl"
READ = re.compile(r"\$var\(([a-z_]+)\) = \$xavp\(answer=>\1\);")


def test_the_script_reads_every_key_of_the_route_answer_and_no_other() -> None:
    text = TEMPLATE.read_text()
    start = text.index("route[ANSWER] {")
    read = READ.findall(text[start : text.index("\n}\n", start)])
    assert sorted(read) == sorted(set(read)), "a key is read twice"
    assert set(read) == set(Decision("extension").wire())
