"""`kazan serve` itself: the lines it prints, `--load`, `--tls` with `--token` through the
kubeconfig it writes, and a clean stop on SIGTERM."""

import stat

from conftest import Kubectl, start_server, stop_server

MANIFEST = """\
# The ConfigMap comes before its namespace: the server creates namespaces first.
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: settings, namespace: shop}
  data: {mode: fast}
---
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
"""


def test_serve_loads_manifests_and_serves_tls_with_a_token(tmp_path):
    manifest = tmp_path / "objects.yaml"
    manifest.write_text(MANIFEST)
    server = start_server(tmp_path, "--tls", "--token", "conformance-token", "--load", str(manifest))
    try:
        assert server.url.startswith("https://127.0.0.1:")
        assert server.kubeconfig == tmp_path / "kazan.kubeconfig"
        # The kubeconfig carries the token: only its owner may read it.
        assert stat.S_IMODE(server.kubeconfig.stat().st_mode) == 0o600
        kubectl = Kubectl(server, tmp_path / "home")
        configmap = kubectl.json("get", "configmap", "settings", "-n", "shop")
        assert configmap["data"] == {"mode": "fast"}
        assert "conformance-token" not in server.stderr_path.read_text()
    finally:
        stop_server(server)
    assert server.process.returncode == 0
    assert "stopping" in server.stderr_path.read_text()


def test_serve_refuses_a_broken_manifest_naming_the_document(tmp_path):
    manifest = tmp_path / "broken.yaml"
    manifest.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\nmetadata: {name: b}\n")
    try:
        start_server(tmp_path, "--load", str(manifest))
    except RuntimeError as error:
        assert f"{manifest}: document 2 (line 4): no `kind`" in str(error)
    else:
        raise AssertionError("kazan serve started with a broken manifest")


def test_serve_with_a_token_alone_serves_tls_so_kubectl_sends_the_token(tmp_path):
    # kubectl reads a kubeconfig user's credentials only for a TLS server (client-go's clientcmd,
    # DirectClientConfig.ClientConfig: "only try to read the auth information if we are secure"),
    # so `--token` implies `--tls` and the printed kubectl hint works as it is.
    server = start_server(tmp_path, "--token", "conformance-token")
    try:
        assert server.url.startswith("https://127.0.0.1:")
        kubectl = Kubectl(server, tmp_path / "home")
        namespaces = kubectl.json("get", "namespaces")
        assert "default" in [item["metadata"]["name"] for item in namespaces["items"]]
    finally:
        stop_server(server)
    assert server.process.returncode == 0
