"""imagegen.data.download against a local HTTP server on 127.0.0.1 (no other network)."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from urllib.parse import unquote, urlsplit

import pytest
from PIL import Image

from imagegen.data.download import (DEFAULT_USER_AGENT, DownloadOptions, UrlItem, _read_body,
                                    download, read_url_list)
from imagegen.errors import ImagegenError


def _image(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buf, format=fmt)
    return buf.getvalue()


PNG = _image("PNG")
JPEG = _image("JPEG")
SLOW_SECONDS = 1.5  # the slow route's delay: longer than the short timeouts used below


# --------------------------------------------------------------------------- the server


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hits: Counter[str] = Counter()
        self.agents: list[str | None] = []
        self.active = 0  # /delay requests being served (counted until the reply is sent)
        self.max_active = 0
        self.stop = threading.Event()  # set at teardown: sleeping handlers wake up and exit


def _handler(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep pytest output clean
            pass

        def do_GET(self) -> None:  # noqa: N802
            path = unquote(urlsplit(self.path).path)
            with state.lock:
                state.hits[path] += 1
                count = state.hits[path]
                state.agents.append(self.headers.get("User-Agent"))
            try:
                self.route(path, count)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up first (timeouts, size limits)

        def send(self, status: int, body: bytes = b"", ctype: str | None = "image/png",
                 headers: dict | None = None) -> None:
            self.send_response(status)
            if ctype:
                self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def redirect(self, location: str) -> None:
            self.send(302, b"", ctype="text/html", headers={"Location": location})

        def route(self, path: str, count: int) -> None:
            parts = path.strip("/").split("/")
            head = parts[0]
            if head == "img.png":
                self.send(200, PNG)
            elif head == "img.jpg":
                self.send(200, JPEG, ctype="image/jpeg")
            elif head == "octet.png":
                self.send(200, PNG, ctype="application/octet-stream")
            elif head == "notype.png":
                self.send(200, PNG, ctype=None)
            elif head == "ünicode path.png":
                self.send(200, PNG)
            elif head == "empty.png":
                self.send(200, b"")
            elif head == "slow":
                state.stop.wait(SLOW_SECONDS)
                self.send(200, PNG)
            elif head == "status":
                self.send(int(parts[1]), b"nope", ctype="text/plain")
            elif head == "flaky":  # /flaky/N/tag: 500 for the first N requests, then the image
                if count <= int(parts[1]):
                    self.send(500, b"oops", ctype="text/plain")
                else:
                    self.send(200, PNG)
            elif head == "ratelimited":
                if count == 1:
                    self.send(429, b"slow down", ctype="text/plain", headers={"Retry-After": "0"})
                else:
                    self.send(200, PNG)
            elif head == "html":
                self.send(200, b"<html>hi</html>", ctype="text/html; charset=utf-8")
            elif head == "json":
                self.send(200, b"{}", ctype="application/json")
            elif head == "truncated":  # promises 1000 bytes, sends 100, closes
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.wfile.write(PNG[:50] + b"x" * 50)
            elif head == "big-cl":  # promises a huge body and sends none: must not be read
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(10**9))
                self.end_headers()
                self.wfile.flush()
                state.stop.wait(2.0)
            elif head == "big-close":  # HTTP/1.0, no Content-Length: the body ends at close
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.end_headers()
                for _ in range(10):
                    self.wfile.write(b"x" * 1000)
            elif head in ("big-chunked", "chunked.png", "truncated-chunked"):
                self.protocol_version = "HTTP/1.1"
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Connection", "close")
                self.end_headers()
                if head == "big-chunked":
                    chunks = [b"x" * 1000] * 10
                elif head == "chunked.png":
                    chunks = [PNG[:20], PNG[20:]]
                else:
                    self.wfile.write(b"3e8\r\n" + b"x" * 100)  # a 1000-byte chunk cut at 100
                    return
                for c in chunks:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(c), c))
                self.wfile.write(b"0\r\n\r\n")
            elif head == "redirect":  # /redirect/N: N redirects (relative), then the image
                n = int(parts[1])
                self.redirect(f"/redirect/{n - 1}" if n > 1 else "/img.png")
            elif head == "abs-redirect":
                host, port = self.server.server_address[:2]
                self.redirect(f"http://{host}:{port}/img.jpg")
            elif head == "loop":
                self.redirect("/loop")
            elif head == "to-ftp":
                self.redirect("ftp://127.0.0.1/img.png")
            elif head == "drop":  # close without any response
                self.close_connection = True
            elif head == "delay":  # /delay/MS/I: wait MS milliseconds, then body b"body-I"
                with state.lock:
                    state.active += 1
                    state.max_active = max(state.max_active, state.active)
                state.stop.wait(int(parts[1]) / 1000)
                with state.lock:  # before the reply: the client's next request comes after it
                    state.active -= 1
                self.send(200, f"body-{parts[2]}".encode())
            else:
                self.send(404, b"no such route", ctype="text/plain")

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # no tracebacks on stderr
        pass


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """Requests must go straight to 127.0.0.1, whatever proxy the environment names."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def server():
    state = _State()
    httpd = _Server(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield SimpleNamespace(url=lambda path: base + path, state=state)
    finally:
        state.stop.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
        assert not thread.is_alive()


def _items(urls):
    return [UrlItem(key=u, url=u, label=None, line=i + 1) for i, u in enumerate(urls)]


def _run(urls, **options):
    settings = dict(timeout=2.0, retries=2, backoff=0.01, workers=4)
    settings.update(options)
    results = list(download(_items(urls), DownloadOptions(**settings)))
    assert [r[0].url for r in results] == list(urls)  # every input once, in order
    for _, body, reason in results:
        assert (body is None) != (reason is None)
    return results


def _one(url, **options):
    [(_, body, reason)] = _run([url], **options)
    return body, reason


# --------------------------------------------------------------------------- successes


def test_good_images_and_accepted_types(server):
    urls = [server.url(p) for p in ("/img.png", "/img.jpg", "/octet.png", "/notype.png",
                                    "/chunked.png", "/ünicode path.png")]
    results = _run(urls)
    assert [r[2] for r in results] == [None] * 6
    assert [r[1] for r in results] == [PNG, JPEG, PNG, PNG, PNG, PNG]


def test_user_agent_sent_on_every_request(server):
    assert DEFAULT_USER_AGENT.startswith("imagegen/0.1.0 (")
    _run([server.url("/img.png"), server.url("/redirect/2"), server.url("/flaky/1/ua")])
    assert len(server.state.agents) == 1 + 3 + 2
    assert set(server.state.agents) == {DEFAULT_USER_AGENT}
    _one(server.url("/img.png"), user_agent="custom-agent/1")
    assert server.state.agents[-1] == "custom-agent/1"


def test_redirects_followed_up_to_five(server):
    body, reason = _one(server.url("/redirect/5"))
    assert (body, reason) == (PNG, None)
    assert _one(server.url("/abs-redirect")) == (JPEG, None)


# --------------------------------------------------------------------------- HTTP failures


def test_404_not_retried(server):
    assert _one(server.url("/status/404")) == (None, "HTTP 404 Not Found")
    assert server.state.hits["/status/404"] == 1


def test_500_retried_then_reported(server):
    assert _one(server.url("/status/500")) == (None, "HTTP 500 Internal Server Error (3 attempts)")
    assert server.state.hits["/status/500"] == 3
    assert _one(server.url("/status/503"), retries=0) == (None, "HTTP 503 Service Unavailable")


def test_408_retried_other_4xx_not(server):
    assert _one(server.url("/status/408"), retries=1) == (None, "HTTP 408 Request Timeout (2 attempts)")
    assert _one(server.url("/status/403"), retries=1) == (None, "HTTP 403 Forbidden")
    assert server.state.hits["/status/408"] == 2 and server.state.hits["/status/403"] == 1


def test_flaky_server_succeeds_after_retries(server):
    assert _one(server.url("/flaky/2/a")) == (PNG, None)
    assert server.state.hits["/flaky/2/a"] == 3
    # one failure more than the retries allow
    assert _one(server.url("/flaky/3/b"))[1] == "HTTP 500 Internal Server Error (3 attempts)"
    assert server.state.hits["/flaky/3/b"] == 3


def test_429_honours_retry_after(server):
    start = time.monotonic()
    assert _one(server.url("/ratelimited/x"), backoff=10.0) == (PNG, None)
    assert time.monotonic() - start < 3.0  # Retry-After: 0 replaced the 10 s backoff
    assert server.state.hits["/ratelimited/x"] == 2


def test_wrong_content_type(server):
    assert _one(server.url("/html")) == (None, "wrong content type 'text/html' (expected image/*)")
    assert _one(server.url("/json")) == (None, "wrong content type 'application/json' (expected image/*)")
    assert server.state.hits["/html"] == 1


def test_empty_body(server):
    assert _one(server.url("/empty.png")) == (None, "empty body")


# --------------------------------------------------------------------------- network failures


def test_timeout_retried_then_reported(server):
    start = time.monotonic()
    assert _one(server.url("/slow"), timeout=0.3, retries=1) == (None, "timed out after 0.3 s (2 attempts)")
    assert time.monotonic() - start < SLOW_SECONDS
    assert server.state.hits["/slow"] == 2


def test_connection_refused():
    with socket.socket() as s:  # a port on 127.0.0.1 that nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    body, reason = _one(f"http://127.0.0.1:{port}/img.png", retries=1)
    assert body is None
    assert reason == "connection failed: connection refused (2 attempts)"


def test_connection_dropped(server):
    body, reason = _one(server.url("/drop"), retries=1)
    assert reason.startswith("connection failed: ") and reason.endswith(" (2 attempts)")
    assert server.state.hits["/drop"] == 2


def test_truncated_body(server):
    assert _one(server.url("/truncated"), retries=1) == (None, "truncated body: got 100 of 1000 bytes (2 attempts)")
    assert server.state.hits["/truncated"] == 2
    assert _one(server.url("/truncated-chunked"), retries=0) == (None, "truncated body: connection closed before the end")


# --------------------------------------------------------------------------- size limit


@pytest.mark.parametrize("route", ["/big-cl", "/big-close", "/big-chunked"])
def test_body_over_max_bytes(server, route):
    start = time.monotonic()
    assert _one(server.url(route), max_bytes=1000, timeout=1.0) == (None, "body larger than 1000 bytes limit")
    assert time.monotonic() - start < 1.0  # /big-cl sends no body: it was refused from the header
    assert server.state.hits[route] == 1  # not retried


def test_max_bytes_boundary(server):
    assert _one(server.url("/img.png"), max_bytes=len(PNG)) == (PNG, None)
    assert _one(server.url("/notype.png"), max_bytes=len(PNG) - 1)[1].startswith("body larger than")


def test_never_reads_more_than_max_bytes_plus_one():
    class Endless:
        asked = 0

        def read(self, n):
            self.asked += n
            return b"x" * n

    stream = Endless()
    from imagegen.data.download import _Failure

    with pytest.raises(_Failure, match="20 MiB"):
        _read_body(stream, None, 20 * 2**20, time.monotonic() + 60, 60, threading.Event())
    assert stream.asked == 20 * 2**20 + 1


# --------------------------------------------------------------------------- redirects


def test_redirect_loop_and_too_many(server):
    assert _one(server.url("/loop")) == (None, "too many redirects (more than 5)")
    assert server.state.hits["/loop"] == 6  # the first request and 5 redirects, not retried
    assert _one(server.url("/redirect/6")) == (None, "too many redirects (more than 5)")
    assert server.state.hits["/img.png"] == 0


def test_redirect_to_ftp_refused(server):
    assert _one(server.url("/to-ftp")) == (None, "redirect to unsupported URL scheme 'ftp' (only http and https)")


# --------------------------------------------------------------------------- bad URLs


def test_invalid_urls_are_failures_not_errors():
    urls = ["ftp://example.com/a.png", "not a url", "http://", "http://[::1",
            "http://127.0.0.1:99999/x.png", "file:///etc/passwd", "javascript:alert(1)"]
    reasons = [r[2] for r in _run(urls)]
    assert reasons == [
        "unsupported URL scheme 'ftp' (only http and https)",
        "invalid URL (must start with http:// or https://)",
        "invalid URL (no host)",
        "invalid URL",
        "invalid URL",
        "unsupported URL scheme 'file' (only http and https)",
        "unsupported URL scheme 'javascript' (only http and https)",
    ]


# --------------------------------------------------------------------------- order, laziness


def test_order_preserved_with_varying_delays(server):
    delays = [(i * 37) % 7 * 15 for i in range(24)]  # 0..90 ms, out of order
    urls = [server.url(f"/delay/{d}/{i}") for i, d in enumerate(delays)]
    results = _run(urls, workers=4)
    assert [r[1] for r in results] == [f"body-{i}".encode() for i in range(24)]
    assert 2 <= server.state.max_active <= 4


def test_mixed_list_every_item_once(server):
    routes = ["/img.png", "/status/404", "/html", "ftp://x/y.png", "/redirect/1", "/delay/20/a",
              "/status/500", "not a url", "/img.jpg", "/to-ftp"] * 3
    urls = [r if "/" != r[0] else server.url(r) for r in routes]
    results = _run(urls, workers=3, retries=1)
    assert len(results) == len(urls)
    ok = [r[0].url for r in results if r[1] is not None]
    assert len(ok) == 4 * 3


def test_inputs_consumed_lazily(server):
    pulled = 0

    def source():
        nonlocal pulled
        for i in range(1000):
            pulled += 1
            url = server.url(f"/delay/10/{i}")
            yield UrlItem(key=url, url=url, label=None, line=i + 1)

    workers = 2
    gen = download(source(), DownloadOptions(workers=workers, timeout=2.0, backoff=0.01))
    item, body, reason = next(gen)
    assert (item.line, body, reason) == (1, b"body-0", None)
    assert pulled < 3 * workers
    for _ in range(9):
        next(gen)
    assert pulled <= 10 + 2 * workers + 1
    assert server.state.max_active <= workers
    gen.close()  # cancels what is pending
    time.sleep(0.1)
    assert sum(server.state.hits.values()) < 10 + 3 * workers


def test_progress_bar_does_not_break(server):
    results = list(download(_items([server.url("/img.png")]), DownloadOptions(backoff=0.01), progress=True))
    assert results[0][1] == PNG


def test_bad_options():
    with pytest.raises(ImagegenError, match="workers"):
        DownloadOptions(workers=0)
    with pytest.raises(ImagegenError, match="timeout"):
        DownloadOptions(timeout=0)
    with pytest.raises(ImagegenError, match="retries"):
        DownloadOptions(retries=-1)
    with pytest.raises(ImagegenError, match="max_bytes"):
        DownloadOptions(max_bytes=0)


# --------------------------------------------------------------------------- read_url_list


def test_read_txt(tmp_path):
    f = tmp_path / "urls.txt"
    f.write_bytes(b"# my images\r\nhttp://a/1.png\r\n\r\n   http://a/2.png  \n#http://a/skip.png\nnot a url\n")
    items = read_url_list(f)
    assert [(i.key, i.url, i.label, i.line) for i in items] == [
        ("http://a/1.png", "http://a/1.png", None, 2),
        ("http://a/2.png", "http://a/2.png", None, 4),
        ("not a url", "not a url", None, 6),
    ]


def test_read_csv(tmp_path):
    f = tmp_path / "urls.CSV"
    f.write_text("\ufeffid,URL,Label,notes\n1,http://a/1.png,cat,x\n\n2,http://a/2.png,,\n"
                 "3,,dog,empty url skipped\n4,\"http://a/3.png\",\"dog, big\",\"multi\nline\"\n"
                 "5,http://a/4.png,bird,y\n", encoding="utf-8")
    items = read_url_list(f)
    assert [(i.url, i.label, i.line) for i in items] == [
        ("http://a/1.png", "cat", 2),
        ("http://a/2.png", None, 4),
        ("http://a/3.png", "dog, big", 6),
        ("http://a/4.png", "bird", 8),
    ]


def test_read_csv_without_label(tmp_path):
    f = tmp_path / "urls.csv"
    f.write_text("url\nhttp://a/1.png\n")
    assert read_url_list(f) == [UrlItem("http://a/1.png", "http://a/1.png", None, 2)]


def test_read_csv_without_url_column(tmp_path):
    f = tmp_path / "urls.csv"
    f.write_text("link,label\nhttp://a/1.png,cat\n")
    with pytest.raises(ImagegenError, match=r"urls\.csv' has no 'url' column \(line 1.*header"):
        read_url_list(f)


def test_read_errors(tmp_path):
    with pytest.raises(ImagegenError, match="does not exist"):
        read_url_list(tmp_path / "missing.txt")
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"http://a/1.png\nhttp://a/caf\xe9.png\n")
    with pytest.raises(ImagegenError, match=r"latin1\.txt' is not UTF-8 text \(bad byte at line 2\); save it as UTF-8"):
        read_url_list(bad)
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing here\n\n")
    with pytest.raises(ImagegenError, match="holds no URLs"):
        read_url_list(empty)
    header_only = tmp_path / "h.csv"
    header_only.write_text("url,label\n")
    with pytest.raises(ImagegenError, match="holds no URLs"):
        read_url_list(header_only)
    with pytest.raises(ImagegenError, match="is a folder"):
        read_url_list(tmp_path)
