"""A failed task's reason reaches the operator in one line, not only the runner artifacts."""

from __future__ import annotations

from gcmschange.execution.runner import failure_message


def test_a_generic_message_carries_the_commands_own_error() -> None:
    res = {
        "msg": "Task failed: Action failed: Unknown error.",
        "stderr": 'nginx: [emerg] unknown directive "proxy_passs" in /etc/nginx/x.conf:12\n'
        "nginx: configuration file /etc/nginx/nginx.conf test failed\n",
    }
    said = failure_message(res)
    assert "Unknown error" in said and 'unknown directive "proxy_passs"' in said
    assert "\n" not in said


def test_a_loop_says_which_item_failed_and_why() -> None:
    res = {
        "msg": "All items completed",
        "results": [
            {"item": "a", "changed": False},
            {"item": "b", "failed": True, "msg": "Destination /etc/gcms not writable"},
        ],
    }
    assert failure_message(res) == "Destination /etc/gcms not writable"


def test_an_unreachable_loop_names_the_connection_error() -> None:
    res = {
        "msg": "All items completed",
        "results": [{"unreachable": True, "msg": "Failed to connect to the host via ssh: timeout"}],
    }
    assert failure_message(res) == "Failed to connect to the host via ssh: timeout"


def test_a_specific_message_is_kept_as_it_is() -> None:
    said = failure_message({"msg": "Missing sudo password", "stderr": "x"})
    assert said == "Missing sudo password"
    assert failure_message("plain") == "plain"
