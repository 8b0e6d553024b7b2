"""Case processing API: the status endpoint answers on the service port."""

import json


def test_status_endpoint(host):
    out = host.check_output("curl -fsS --max-time 3 http://127.0.0.1:8080/api/v1/status")
    assert json.loads(out)["status"] == "ok"
