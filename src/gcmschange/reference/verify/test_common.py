"""Checks every managed host must pass after any change (testinfra, run over SSH)."""

import json


def test_nginx_is_running(host):
    assert host.service("nginx").is_running


def test_nginx_config_is_valid(host):
    assert host.run("nginx -t").rc == 0


def test_health_endpoint_answers(host):
    out = host.check_output("curl -fsS --max-time 3 http://127.0.0.1/healthz")
    assert json.loads(out)["status"] == "ok"
