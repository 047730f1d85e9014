"""How the service reads systemd's notify variables."""

from __future__ import annotations

from drivers.daemon.sd_notify import NotifyTarget, SystemdNotifier


def test_no_notify_socket_means_nothing_to_notify() -> None:
    notifier = SystemdNotifier.from_environment({})

    assert notifier.target == NotifyTarget(address=None, watchdog_s=None)
    assert notifier.ping_interval_s is None
    notifier.ready()


def test_abstract_socket_name_starts_with_a_nul_byte() -> None:
    target = NotifyTarget.from_environment({"NOTIFY_SOCKET": "@/org/freedesktop/notify"}, 7)

    assert target.address == "\0/org/freedesktop/notify"


def test_watchdog_pings_at_half_the_period_systemd_waits() -> None:
    env = {"NOTIFY_SOCKET": "/run/systemd/notify", "WATCHDOG_USEC": "30000000"}

    assert SystemdNotifier.from_environment(env).ping_interval_s == 15.0


def test_watchdog_meant_for_another_process_is_ignored() -> None:
    env = {"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}

    assert NotifyTarget.from_environment(env, pid=4242).watchdog_s is None


def test_malformed_or_zero_watchdog_period_disables_the_watchdog() -> None:
    for usec in ("", "0", "-5", "1e6", "soon"):
        env = {"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": usec}
        assert NotifyTarget.from_environment(env, pid=1).watchdog_s is None


def test_children_do_not_inherit_the_notify_variables() -> None:
    env = {"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "9", "A": "b"}

    SystemdNotifier.from_environment(env)

    assert env == {"A": "b"}
