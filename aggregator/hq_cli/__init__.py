"""`callmesh hq ...`: the HQ command line, a client of the HQ HTTP API (docs/hq-cli.md).

| module | holds |
|---|---|
| `errors.py` | `HqCliError` and the exit codes |
| `target.py` | where HQ is and its token: defaults < config file < environment < command line |
| `client.py` | the HTTP client: bearer token, timeouts, HQ's errors turned into `HqCliError` |
| `paths.py` | ids typed by the user as URL path segments |
| `output.py` | tables, JSON, CSV and XLSX, and the progress line of exports and downloads |
| `commands.py` | the command tree (`sites`, `cdrs`, `report`, `recordings`) and its runner |
| `fleet_commands.py` | `sims` (and their actions) and `dnc` |
| `directory_commands.py` | `directory` (read only: entries and routing snapshots per site) |

Every failure is an ``HqCliError`` (``error_id``, a message, an exit code, a hint),
printed on stderr as ``error <error_id>: <message>``.
"""
