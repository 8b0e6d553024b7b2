"""Public portal: serves its page, and reaches the case API through its upstream."""

import json


def test_portal_page(host):
    out = host.check_output("curl -fsS --max-time 3 http://127.0.0.1/")
    assert "Client portal" in out


def test_portal_reaches_case_api(host):
    out = host.check_output("curl -fsS --max-time 5 http://127.0.0.1/api/v1/status")
    assert json.loads(out)["system"] == "case_api"
