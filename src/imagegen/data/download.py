"""Download images from a list of URLs: the URL-list source of ``imagegen data import``.

Example:
    >>> from imagegen.data.download import DownloadOptions, download, read_url_list
    >>> items = read_url_list("urls.txt")  # doctest: +SKIP
    >>> for item, body, reason in download(items, DownloadOptions(workers=8)):  # doctest: +SKIP
    ...     print(item.key, len(body) if body is not None else reason)

The list is read by :func:`imagegen.data.url_list.read_url_list` (re-exported here).

The download (:func:`download`):

- Every input comes back exactly once, in input order, as ``(item, body, None)`` or
  ``(item, None, reason)`` where ``reason`` is a short lowercase-first sentence. The
  importer records every failure with its reason, so nothing is dropped silently.
- ``workers`` threads (default 16) download at once; at most ``2 * workers`` downloads are
  in flight or finished-but-not-yet-yielded, and ``items`` is consumed lazily, so a
  million-line list never holds more than a window of bodies in memory.
- Only ``http`` and ``https`` URLs are fetched, with ``GET`` and the ``User-Agent`` from
  :class:`DownloadOptions` on every request. Up to 5 redirects are followed, and only to
  ``http``/``https`` targets. Proxies come from the usual ``*_proxy`` variables.
- ``timeout`` (default 15 s) bounds the connection and each read; an attempt is also
  abandoned after ``20 * timeout`` in total so a server trickling bytes cannot hold a
  worker forever.
- Retried (``retries`` extra attempts, default 2, after ``backoff`` seconds doubling each
  time, default 0.5 s): timeouts, refused/reset connections, truncated bodies, HTTP 408,
  429 and 5xx. On 429/503 a ``Retry-After`` header (seconds or a date) replaces the
  backoff, capped at 30 s. A reason that took several attempts ends in "(3 attempts)".
- Not retried: other HTTP 4xx ("HTTP 404 Not Found"), a ``Content-Type`` that is not
  ``image/*`` ("wrong content type 'text/html' (expected image/*)", refused before the
  body is read; ``application/octet-stream``, ``binary/octet-stream`` and a missing type
  are accepted and the decoder judges the bytes), bodies over ``max_bytes`` (default
  20 MiB, checked against ``Content-Length`` first and counted while reading; never more
  than ``max_bytes + 1`` bytes are read), empty bodies, redirect problems, bad URLs.
"""

from __future__ import annotations

import email.utils
import http
import http.client
import io
import socket
import ssl
import string
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterable, Iterator
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

from tqdm import tqdm

from imagegen import __version__
from imagegen.errors import ImagegenError

from .url_list import UrlItem, read_url_list  # noqa: F401  (re-exported)

MAX_REDIRECTS = 5
RETRY_AFTER_CAP = 30.0  # seconds: a longer Retry-After is shortened to this
ATTEMPT_TIMEOUTS = 20  # an attempt is abandoned after this many ``timeout``s in total
CHUNK = 64 * 1024
ACCEPT = "image/png,image/jpeg,image/gif,image/webp,image/*;q=0.8,*/*;q=0.5"
OCTET_TYPES = {"application/octet-stream", "binary/octet-stream"}
REDIRECT_CODES = {301, 302, 303, 307, 308}
DEFAULT_USER_AGENT = (f"imagegen/{__version__} (image dataset import; "
                      "+https://pypi.org/project/imagegen/)")


@dataclass(frozen=True)
class DownloadOptions:
    """How :func:`download` fetches: see the module docstring for what each knob does.

    Example:
        >>> DownloadOptions(workers=4, timeout=5).retries
        2
    """

    timeout: float = 15.0  # per request (connect + each read), seconds
    retries: int = 2  # extra attempts after the first, for retryable failures only
    backoff: float = 0.5  # seconds before retry 1; doubles each retry
    max_bytes: int = 20 * 2**20  # a larger body is refused
    workers: int = 16  # concurrent downloads (threads)
    user_agent: str = DEFAULT_USER_AGENT

    @classmethod
    def with_megabytes(cls, max_download_mb: float = 20.0, **kwargs: Any) -> "DownloadOptions":
        """Options with the body limit in MiB (``imagegen data import --max-download-mb``).

        Example:
            >>> DownloadOptions.with_megabytes(1.5).max_bytes
            1572864
        """
        if not _positive(max_download_mb):
            raise ImagegenError(f"max_download_mb must be a positive number, got {max_download_mb!r}")
        return cls(max_bytes=int(max_download_mb * 2**20), **kwargs)

    def __post_init__(self) -> None:
        checks = [
            (_positive(self.timeout), f"timeout must be a positive number of seconds, got {self.timeout!r}"),
            (_int_at_least(self.retries, 0), f"retries must be an integer >= 0, got {self.retries!r}"),
            (_positive(self.backoff) or self.backoff == 0,
             f"backoff must be a number of seconds >= 0, got {self.backoff!r}"),
            (_int_at_least(self.max_bytes, 1), f"max_bytes must be an integer >= 1, got {self.max_bytes!r}"),
            (_int_at_least(self.workers, 1), f"workers must be an integer >= 1, got {self.workers!r}"),
            (isinstance(self.user_agent, str) and self.user_agent.strip() != ""
             and self.user_agent.isprintable(),
             f"user_agent must be a non-empty printable string, got {self.user_agent!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ImagegenError(message)


def _positive(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 and x < float("inf")


def _int_at_least(x: object, low: int) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= low


# --------------------------------------------------------------------------- downloading


def download(items: Iterable[UrlItem], options: DownloadOptions = DownloadOptions(), *,
             progress: bool = False) -> Iterator[tuple[UrlItem, bytes | None, str | None]]:
    """Fetch every item; yield ``(item, body, None)`` or ``(item, None, reason)`` in input order.

    ``items`` is consumed lazily and at most about ``2 * options.workers`` downloads are in
    flight or waiting to be yielded. Closing the generator early cancels what is pending.
    ``progress=True`` shows a tqdm bar on stderr when the work lasts over a second.

    Example:
        >>> items = [UrlItem("ftp://example.com/a.png", "ftp://example.com/a.png", None, 1)]
        >>> [reason for _, _, reason in download(items)]
        ["unsupported URL scheme 'ftp' (only http and https)"]
    """
    if not isinstance(options, DownloadOptions):
        raise TypeError(f"options must be a DownloadOptions, got {type(options).__name__}")
    total = len(items) if hasattr(items, "__len__") else None  # type: ignore[arg-type]
    return _download(iter(items), total, options, progress)


def _download(source: Iterator[UrlItem], total: int | None, options: DownloadOptions,
              progress: bool) -> Iterator[tuple[UrlItem, bytes | None, str | None]]:
    window = 2 * options.workers
    stop = threading.Event()
    opener = _opener()
    pending: deque[tuple[UrlItem, Future[tuple[bytes | None, str | None]]]] = deque()
    pool = ThreadPoolExecutor(max_workers=options.workers, thread_name_prefix="imagegen-download")
    bar = tqdm(total=total, desc="download", unit="url", file=sys.stderr, disable=not progress,
               delay=1.0, leave=False, dynamic_ncols=True)
    failed = 0
    exhausted = False
    try:
        while True:
            while not exhausted and len(pending) < window:
                try:
                    item = next(source)
                except StopIteration:
                    exhausted = True
                    break
                pending.append((item, pool.submit(_fetch, item.url, options, opener, stop)))
            if not pending:
                return
            item, future = pending.popleft()
            body, reason = future.result()
            if reason is not None:
                failed += 1
                bar.set_postfix_str(f"{failed} failed", refresh=False)
            bar.update(1)
            yield item, body, reason
    finally:
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
        bar.close()


class _Failure(Exception):
    """One failed attempt: ``reason`` for the report, whether another attempt may help."""

    def __init__(self, reason: str, retryable: bool = False, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after


def _opener() -> urllib.request.OpenerDirector:
    """http/https only (no file:, ftp:, data:), proxies from the environment, and no
    automatic redirects or error raising: :func:`_attempt` looks at every status itself."""
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler(), urllib.request.HTTPHandler(),
                    urllib.request.HTTPSHandler()):
        opener.add_handler(handler)
    return opener


def _fetch(url: str, options: DownloadOptions, opener: urllib.request.OpenerDirector,
           stop: threading.Event) -> tuple[bytes | None, str | None]:
    """Run in a worker thread: all attempts for one URL."""
    try:
        url = _check_url(url, "utf-8")
    except _Failure as f:
        return None, f.reason
    attempts = 0
    while True:
        attempts += 1
        try:
            return _attempt(url, options, opener, stop), None
        except _Failure as f:
            failure = f
        if not failure.retryable or attempts > options.retries or stop.is_set():
            suffix = f" ({attempts} attempts)" if attempts > 1 else ""
            return None, failure.reason + suffix
        if failure.retry_after is not None:
            delay = failure.retry_after
        else:  # exponential backoff with a small deterministic jitter (up to +25%) per URL
            delay = options.backoff * 2 ** (attempts - 1)
            delay *= 1 + (zlib.crc32(url.encode("utf-8", "replace")) % 1000) / 4000
        if stop.wait(delay):
            return None, "cancelled"


def _check_url(url: str, encoding: str, redirect: bool = False) -> str:
    """The URL ready for urllib (non-ASCII and spaces percent-encoded), or a _Failure."""
    what = "redirect to " if redirect else ""
    try:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        if not scheme:
            raise _Failure(f"{what}invalid URL (must start with http:// or https://)")
        if scheme not in ("http", "https"):
            shown = _clip(scheme, 20)
            raise _Failure(f"{what}unsupported URL scheme '{shown}' (only http and https)")
        if not parts.hostname:
            raise _Failure(f"{what}invalid URL (no host)")
        parts.port  # noqa: B018 - raises ValueError when out of range or not a number
    except ValueError:
        raise _Failure(f"{what}invalid URL") from None
    safe = string.punctuation
    return urlunsplit((scheme, parts.netloc, quote(parts.path, safe=safe, encoding=encoding),
                       quote(parts.query, safe=safe, encoding=encoding), ""))


def _attempt(url: str, options: DownloadOptions, opener: urllib.request.OpenerDirector,
             stop: threading.Event) -> bytes:
    """One attempt: follow redirects, check status, type and size, read the body."""
    budget = ATTEMPT_TIMEOUTS * options.timeout
    deadline = time.monotonic() + budget
    headers = {"User-Agent": options.user_agent, "Accept": ACCEPT}
    for _ in range(MAX_REDIRECTS + 1):
        if stop.is_set():
            raise _Failure("cancelled")
        try:
            response = opener.open(urllib.request.Request(url, headers=headers), timeout=options.timeout)
        except Exception as e:  # noqa: BLE001 - classified below; unknown ones re-raised
            raise _classify(e, options) from None
        with response:
            status = response.status
            location = response.headers.get("Location")
            if status in REDIRECT_CODES and location:
                url = _check_url(urljoin(url, location), "iso-8859-1", redirect=True)
                continue
            if not 200 <= status < 300:
                retry_after = _retry_after(response.headers.get("Retry-After")) if status in (429, 503) else None
                raise _Failure(_http_reason(status, response.reason),
                               retryable=status in (408, 429) or status >= 500, retry_after=retry_after)
            ctype = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype and not ctype.startswith("image/") and ctype not in OCTET_TYPES:
                raise _Failure(f"wrong content type '{_clip(ctype, 60)}' (expected image/*)")
            length = _content_length(response.headers)
            if length is not None and length > options.max_bytes:
                raise _Failure(f"body larger than {_size(options.max_bytes)} limit")
            try:
                return _read_body(response, length, options.max_bytes, deadline, budget, stop)
            except _Failure:
                raise
            except Exception as e:  # noqa: BLE001
                raise _classify(e, options) from None
    raise _Failure(f"too many redirects (more than {MAX_REDIRECTS})")


def _read_body(response: io.BufferedIOBase | http.client.HTTPResponse, length: int | None,
               max_bytes: int, deadline: float, budget: float, stop: threading.Event) -> bytes:
    """Read at most ``max_bytes + 1`` bytes; refuse larger, truncated and empty bodies."""
    chunks: list[bytes] = []
    got = 0
    while True:
        if stop.is_set():
            raise _Failure("cancelled")
        if time.monotonic() > deadline:
            raise _Failure(f"timed out (download took over {budget:g} s)")
        try:
            chunk = response.read(min(CHUNK, max_bytes + 1 - got))
        except http.client.IncompleteRead:
            raise _Failure("truncated body: connection closed before the end", retryable=True) from None
        if not chunk:
            break
        got += len(chunk)
        if got > max_bytes:
            raise _Failure(f"body larger than {_size(max_bytes)} limit")
        chunks.append(chunk)
    if length is not None and got < length:
        raise _Failure(f"truncated body: got {got} of {length} bytes", retryable=True)
    if got == 0:
        raise _Failure("empty body")
    return b"".join(chunks)


def _classify(e: BaseException, options: DownloadOptions) -> _Failure:
    """Turn a urllib / socket / http.client exception into a short reason."""
    if isinstance(e, urllib.error.URLError) and isinstance(e.reason, BaseException):
        e = e.reason
    if isinstance(e, TimeoutError):  # socket.timeout is TimeoutError
        return _Failure(f"timed out after {options.timeout:g} s", retryable=True)
    if isinstance(e, ssl.SSLCertVerificationError):
        return _Failure(f"TLS certificate error: {e.verify_message or e.reason}")
    if isinstance(e, ssl.SSLError):
        return _Failure(f"TLS error: {_lower(e.reason or str(e))}", retryable=True)
    if isinstance(e, socket.gaierror):
        return _Failure("could not resolve host", retryable=e.errno == socket.EAI_AGAIN)
    if isinstance(e, http.client.RemoteDisconnected):
        return _Failure("connection failed: server closed the connection without a response",
                        retryable=True)
    if isinstance(e, ConnectionRefusedError):
        return _Failure("connection failed: connection refused", retryable=True)
    if isinstance(e, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        return _Failure("connection failed: connection reset", retryable=True)
    if isinstance(e, http.client.InvalidURL):
        return _Failure("invalid URL")
    if isinstance(e, http.client.IncompleteRead):
        return _Failure("truncated body: connection closed before the end", retryable=True)
    if isinstance(e, http.client.HTTPException):
        return _Failure(f"invalid HTTP response ({type(e).__name__})", retryable=True)
    if isinstance(e, OSError):
        return _Failure(f"connection failed: {_lower(e.strerror or str(e) or type(e).__name__)}",
                        retryable=True)
    if isinstance(e, (ValueError, UnicodeError)):  # e.g. a host that does not encode
        return _Failure("invalid URL")
    if isinstance(e, urllib.error.URLError):
        return _Failure(f"connection failed: {_lower(str(e.reason))}", retryable=True)
    raise e


def _http_reason(status: int, server_reason: str | None) -> str:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = _clip(server_reason or "", 60)
    return f"HTTP {status} {phrase}".rstrip()


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date), capped."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), RETRY_AFTER_CAP)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return min(max(when.timestamp() - time.time(), 0.0), RETRY_AFTER_CAP)


def _content_length(headers: object) -> int | None:
    value = headers.get("Content-Length")  # type: ignore[attr-defined]
    if value is None or not value.strip().isdigit():
        return None
    return int(value.strip())


def _size(n: int) -> str:
    """20971520 -> '20 MiB', 1000 -> '1000 bytes'."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


def _lower(text: str) -> str:
    return text[:1].lower() + text[1:]


def _clip(text: str, limit: int) -> str:
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= limit else text[:limit - 3] + "..."
