"""Partner gateway: TLS is served, and only with the protocols the estate allows."""


def test_tls_answers(host):
    assert host.run("curl -fsSk --max-time 3 https://127.0.0.1/healthz").rc == 0


def test_tls_1_1_refused(host):
    cmd = "openssl s_client -connect 127.0.0.1:443 -tls1_1 </dev/null"
    assert host.run(cmd).rc != 0
