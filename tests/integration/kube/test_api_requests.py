"""What `KubeApi` puts on the wire, over real HTTP: it sends straight to the
client's pool manager, so the headers, auth and query the generated client's
pipeline used to add are checked here."""

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from kubernetes.client import ApiClient, Configuration

from provisioner.kube.api import KubeApi, KubeNotFound, KubeUnavailable, path_for


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers every request with `{}` (404 for a name `missing`) and keeps what it saw."""

    seen: ClassVar[list[tuple[str, str, dict[str, str], bytes]]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.seen.append((self.command, self.path, dict(self.headers), body))
        status = 404 if "missing" in self.path else 200
        payload = (
            b'{"kind":"Status","message":"not there","reason":"NotFound"}'
            if status == 404
            else b"{}"
        )
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _answer

    def log_message(self, *_args: Any) -> None:
        return


@pytest.fixture
def server() -> Iterator[http.server.ThreadingHTTPServer]:
    _Recorder.seen = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _api(url: str, token: str) -> tuple[KubeApi, Configuration]:
    configuration = Configuration(host=url)
    configuration.api_key = {"authorization": token}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    return KubeApi(ApiClient(configuration)), configuration


def _url(httpd: http.server.ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}"


def test_a_patch_carries_the_bearer_token_the_content_type_and_the_clients_user_agent(
    server: http.server.ThreadingHTTPServer,
) -> None:
    api, _ = _api(_url(server), "t-one")
    api.merge_patch(path_for(plural="persistentvolumeclaims", namespace="ns", name="c"), {"a": 1})
    method, path, headers, body = _Recorder.seen[-1]
    assert (method, path) == ("PATCH", "/api/v1/namespaces/ns/persistentvolumeclaims/c")
    assert json.loads(body) == {"a": 1}
    assert headers["authorization"] == "Bearer t-one"
    assert headers["Content-Type"] == "application/merge-patch+json"
    assert headers["Accept"] == "application/json"
    assert headers["User-Agent"] == ApiClient().user_agent


def test_a_token_renewed_by_the_refresh_hook_is_sent_on_the_next_request(
    server: http.server.ThreadingHTTPServer,
) -> None:
    api, configuration = _api(_url(server), "t-old")
    api.get(path_for(plural="namespaces", name="a"))
    configuration.refresh_api_key_hook = lambda c: c.api_key.update(authorization="t-new")
    api.get(path_for(plural="namespaces", name="b"))
    assert [seen[2]["authorization"] for seen in _Recorder.seen] == ["Bearer t-old", "Bearer t-new"]


def test_a_list_sends_its_query_encoded(server: http.server.ThreadingHTTPServer) -> None:
    api, _ = _api(_url(server), "t")
    api.list(
        path_for(plural="persistentvolumes"),
        query=[("labelSelector", "a=b,c in (d)"), ("limit", "500")],
    )
    assert (
        _Recorder.seen[-1][1]
        == "/api/v1/persistentvolumes?labelSelector=a%3Db%2Cc%20in%20%28d%29&limit=500"
    )


def test_a_404_is_not_found_with_the_servers_message(
    server: http.server.ThreadingHTTPServer,
) -> None:
    api, _ = _api(_url(server), "t")
    with pytest.raises(KubeNotFound, match="not there"):
        api.get(path_for(plural="namespaces", name="missing"))


def test_an_unreachable_server_is_unavailable() -> None:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    url = _url(httpd)
    httpd.server_close()
    api, _ = _api(url, "t")
    with pytest.raises(KubeUnavailable):
        api.get(path_for(plural="namespaces", name="a"))
