"""A lean request path for PutItem, the replicator's hot write (every conditional write goes through it).

Why: through botocore, one PutItem of a ~200-byte item costs about three times the CPU of everything else the
replicator does for the record (profile in docs/architecture.md, "Clients"): the request is serialized by a
shape walker, ten events are emitted through the hierarchical emitter, SigV4 builds its canonical request
through ``email``-based header classes, the endpoint ruleset is resolved again for every call, and the
answer is parsed by another shape walker. The items are already in DynamoDB's JSON form, so the body is one
``json.dumps``; the endpoint is resolved once per table; SigV4 is a dozen lines with a signing key cached per
day; the answer is read only as far as it is needed.

What stays botocore's, so that nothing else changes:

* the **client**: its endpoint (``AWS_ENDPOINT_URL_DYNAMODB``, regional endpoints: asked of the client's own
  endpoint ruleset, once per table name), its **credentials** object (an assumed role's refreshes itself before
  it expires: asked for every request, as botocore's signer does), its **HTTP session**'s urllib3 pool for the
  endpoint (pool size, keep-alive, timeouts, TLS bundle; looked up once, then used with botocore's own
  ``urlopen`` arguments; an endpoint behind a proxy goes through the session's ``send``), and botocore's
  transport exceptions, which retry.py classifies;
* the **events** that tests, fault injection and the benchmarks' simulated round trip hook into:
  ``provide-client-params``, ``before-call`` (a handler may answer the call), ``before-send`` (a handler may
  answer the request: benchmarks/rtt.py's wait, the local runtime's faults) and ``after-call``, with the
  arguments botocore gives them;
* **errors**: a non-2xx answer raises botocore's ``ClientError`` with the response dict botocore would build
  (``Error.Code``/``Message``, ``ResponseMetadata.HTTPStatusCode``, and ``Item`` with binary values as bytes),
  so :func:`.retry.error_code` and :func:`.retry.is_retryable` see exactly what they saw before.

The request is byte-for-byte botocore's (same JSON body, same signed headers: tests/replicator/test_lean_put.py)
minus the two SDK bookkeeping headers ``amz-sdk-invocation-id``/``amz-sdk-request``. Anything unusual (a client
without SigV4 credentials, an endpoint that asks for another signing scheme, a non-botocore client in a test)
goes through ``client.put_item`` as before; every other operation always does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
import weakref
from typing import Any
from urllib.parse import quote, urlsplit

import botocore
import botocore.httpsession
from botocore.awsrequest import AWSPreparedRequest
from botocore.exceptions import ClientError

from .attributes import from_event_image

OPERATION = "PutItem"
_TARGET = "DynamoDB_20120810.PutItem"
_CONTENT_TYPE = "application/x-amz-json-1.0"
_SERVICE = "dynamodb"


def _bytes_to_base64(value: Any) -> str:
    """``json.dumps`` hook: binary attribute values (``B``, ``BS``) travel as base64, as botocore sends them."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not a DynamoDB attribute value")


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


class _Endpoint:
    """Where one table's requests go: URL, ``host`` as SigV4 signs it, and the canonical URI."""

    __slots__ = ("url", "host", "path", "transport")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        # As botocore's _urljoin of the endpoint and the operation's path "/".
        path = parts.path[:-1] + "/" if parts.path.endswith("/") else parts.path + "/"
        self.url = parts._replace(path=path).geturl()
        # As botocore's auth._host_from_url: brackets around IPv6, the port unless it is the scheme's default.
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        if parts.port is not None and parts.port != {"http": 80, "https": 443}.get(parts.scheme):
            host = f"{host}:{parts.port}"
        self.host = host
        self.path = quote(path, safe="/~")
        self.transport: _Transport | None = None


class _Response:
    """What the hooks and the parser read of an answer (botocore's ``AWSResponse`` has the same names)."""

    __slots__ = ("url", "status_code", "headers", "content")

    def __init__(self, url: str, status_code: int, headers: Any, content: bytes) -> None:
        self.url, self.status_code, self.headers, self.content = url, status_code, headers, content


class _Transport:
    """botocore's ``URLLib3Session.send`` for one endpoint reached without a proxy, with what it looks up for
    every request (proxy, pool, certificates, request target) looked up once: the same urllib3 pool (size,
    timeouts, keep-alive), the same urlopen arguments, the same botocore exceptions for transport errors.

    Raises:
        ValueError: a proxy is configured for the endpoint (botocore's session then sends).
    """

    def __init__(self, session: Any, url: str) -> None:
        if session._proxy_config.proxy_url_for(url):
            raise ValueError("proxy")
        self._url = url
        self._pool = session._manager.connection_from_url(url)
        session._setup_ssl_cert(self._pool, url, session._verify)
        self._target = session._path_url(url)

    def send(self, request: AWSPreparedRequest) -> _Response:
        h = botocore.httpsession
        try:
            answer = self._pool.urlopen(
                method="POST", url=self._target, body=request.body, headers=request.headers,
                retries=h.Retry(False), assert_same_host=False, preload_content=True, decode_content=False,
                chunked=False, enforce_content_length=False,
            )
        except h.URLLib3SSLError as e:
            raise h.SSLError(endpoint_url=self._url, error=e)
        except (h.NewConnectionError, socket.gaierror) as e:
            raise h.EndpointConnectionError(endpoint_url=self._url, error=e)
        except h.URLLib3ConnectTimeoutError as e:
            raise h.ConnectTimeoutError(endpoint_url=self._url, error=e)
        except h.URLLib3ReadTimeoutError as e:
            raise h.ReadTimeoutError(endpoint_url=self._url, error=e)
        except h.ProtocolError as e:
            raise h.ConnectionClosedError(error=e, request=request, endpoint_url=self._url)
        except Exception as e:  # noqa: BLE001 - as botocore: any other failure of the request
            raise h.HTTPClientError(error=e)
        return _Response(self._url, answer.status, answer.headers, answer.data)


class LeanPutItem:
    """PutItem for one botocore DynamoDB client (see the module docstring). Thread-safe.

    Raises:
        ValueError: the client cannot be served by this path (the caller then uses ``client.put_item``).
    """

    def __init__(self, client: Any) -> None:
        meta = client.meta
        signer = client._request_signer
        if signer.signature_version != "v4":
            raise ValueError(f"signature version {signer.signature_version!r}")
        if signer._credentials is None:
            raise ValueError("no credentials")
        self._client = client
        self._events = meta.events
        self._model = meta.service_model.operation_model(OPERATION)
        self._region = signer._region_name
        self._credentials = signer._credentials
        self._signer = signer
        self._send = client._endpoint.http_session.send
        self._user_agent = meta.config.user_agent or f"Botocore/{botocore.__version__}"
        self._endpoints: dict[str, _Endpoint] = {}
        self._key_lock = threading.Lock()
        self._signing_key: tuple[str, str, bytes] = ("", "", b"")  # (secret, date, key)
        self._endpoint_for("probe")  # fail here, not on the first write, if botocore's resolver changed

    def _endpoint_for(self, table_name: str) -> _Endpoint:
        """The endpoint botocore would use for a PutItem to ``table_name`` (an ARN may select another)."""
        endpoint = self._endpoints.get(table_name)
        if endpoint is None:
            context = {"client_region": self._region, "client_config": self._client.meta.config,
                       "has_streaming_input": False, "auth_type": None}
            url, headers, properties = self._client._resolve_endpoint_ruleset(
                self._model, {"TableName": table_name, "Item": {}}, context
            )
            for scheme in (properties or {}).get("authSchemes", []):
                if scheme.get("name") != "sigv4" or scheme.get("signingRegion", self._region) != self._region:
                    raise ValueError(f"endpoint asks for auth scheme {scheme!r}")
            if headers:
                raise ValueError(f"endpoint asks for headers {sorted(headers)}")
            endpoint = _Endpoint(url)
            try:
                endpoint.transport = _Transport(self._client._endpoint.http_session, endpoint.url)
            except (ValueError, AttributeError):
                endpoint.transport = None  # botocore's session sends
            self._endpoints[table_name] = endpoint
        return endpoint

    def _key(self, secret: str, date: str) -> bytes:
        """The SigV4 signing key for ``date`` (YYYYMMDD), derived once per day and secret."""
        cached = self._signing_key
        if cached[0] == secret and cached[1] == date:
            return cached[2]
        key = _hmac(("AWS4" + secret).encode("utf-8"), date)
        for part in (self._region, _SERVICE, "aws4_request"):
            key = _hmac(key, part)
        with self._key_lock:
            self._signing_key = (secret, date, key)
        return key

    def sign(self, headers: dict[str, str], body: bytes, endpoint: _Endpoint, now: float | None = None) -> None:
        """Add SigV4 headers (``X-Amz-Date``, ``X-Amz-Security-Token``, ``Authorization``) to ``headers``,
        as botocore's ``SigV4Auth`` does for this request (``now``: epoch seconds, default the clock)."""
        creds = self._credentials.get_frozen_credentials()  # refreshes an assumed role's before it expires
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        headers["X-Amz-Date"] = amz_date
        signed = {
            "content-type": headers["Content-Type"],
            "host": endpoint.host,
            "x-amz-date": amz_date,
            "x-amz-target": headers["X-Amz-Target"],
        }
        if creds.token:
            headers["X-Amz-Security-Token"] = creds.token
            signed["x-amz-security-token"] = creds.token
        names = sorted(signed)
        canonical = "\n".join((
            "POST",
            endpoint.path,
            "",
            "".join(f"{name}:{' '.join(signed[name].split())}\n" for name in names),
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        ))
        scope = f"{amz_date[:8]}/{self._region}/{_SERVICE}/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode('utf-8')).hexdigest()}"
        signature = hmac.new(self._key(creds.secret_key, amz_date[:8]), to_sign.encode("utf-8"), hashlib.sha256)
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope}, SignedHeaders={';'.join(names)}, "
            f"Signature={signature.hexdigest()}"
        )

    def request(self, params: dict[str, Any], now: float | None = None) -> AWSPreparedRequest:
        """The signed HTTP request for PutItem ``params`` (the ``put_item`` keyword arguments)."""
        body = json.dumps(params, default=_bytes_to_base64).encode("utf-8")
        endpoint = self._endpoint_for(params["TableName"])
        headers = {"X-Amz-Target": _TARGET, "Content-Type": _CONTENT_TYPE, "User-Agent": self._user_agent,
                   "Content-Length": str(len(body))}
        self.sign(headers, body, endpoint, now)
        return AWSPreparedRequest("POST", endpoint.url, headers, body, False)

    def put_item(self, params: dict[str, Any]) -> dict[str, Any]:
        """``client.put_item(**params)``: the parsed answer, or ``ClientError`` for an error answer; botocore's
        transport exceptions (timeouts, refused or dropped connections) pass through."""
        events, model, context = self._events, self._model, {}
        for _, replaced in events.emit(f"provide-client-params.{_SERVICE}.{OPERATION}", params=params,
                                       model=model, context=context):
            if replaced is not None:
                params = replaced
                break
        endpoint = self._endpoint_for(params["TableName"])
        request = self.request(params)
        request_dict = {"url_path": "/", "query_string": "", "method": "POST", "headers": request.headers,
                        "body": request.body, "url": request.url, "context": context}
        _, answered = events.emit_until_response(f"before-call.{_SERVICE}.{OPERATION}", model=model,
                                                 params=request_dict, request_signer=self._signer, context=context)
        if answered is not None:
            http, parsed = answered
        else:
            _, http = events.emit_until_response(f"before-send.{_SERVICE}.{OPERATION}", request=request)
            if http is None:
                http = endpoint.transport.send(request) if endpoint.transport else self._send(request)
            parsed = parse_response(http.status_code, http.headers, http.content)
        events.emit(f"after-call.{_SERVICE}.{OPERATION}", http_response=http, parsed=parsed, model=model,
                    context=context)
        if http.status_code >= 300:
            raise ClientError(parsed, OPERATION)
        return parsed


def parse_response(status: int, headers: Any, content: bytes | None) -> dict[str, Any]:
    """What botocore's parser makes of a PutItem answer, as far as the replicator reads it: for an error,
    ``Error.Code`` (the ``__type`` after its ``#``, or the HTTP status when the body is not DynamoDB's JSON),
    ``Error.Message`` and ``Item`` (binary values as bytes); always ``ResponseMetadata.HTTPStatusCode``."""
    if status < 300:
        return {"ResponseMetadata": {"HTTPStatusCode": status}}  # no ReturnValues: DynamoDB answers {}
    headers = dict(headers or {})
    metadata = {"HTTPStatusCode": status, "HTTPHeaders": headers, "RequestId": headers.get("x-amzn-requestid", "")}
    try:
        body = json.loads(content or b"{}")
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    code = str(body.get("__type") or status).rsplit("#", 1)[-1]
    message = body.get("message") or body.get("Message") or ""
    parsed: dict[str, Any] = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": metadata}
    if isinstance(body.get("Item"), dict):
        parsed["Item"] = from_event_image(body["Item"])
    return parsed


_lean: "weakref.WeakKeyDictionary[Any, LeanPutItem | None]" = weakref.WeakKeyDictionary()
_lean_lock = threading.Lock()


def lean_for(client: Any) -> LeanPutItem | None:
    """The lean path of ``client`` (made once per client), or ``None`` when it cannot have one."""
    try:
        return _lean[client]
    except KeyError:
        pass
    except TypeError:
        return None  # not weakly referenceable: not a botocore client
    with _lean_lock:
        if client not in _lean:
            try:
                _lean[client] = LeanPutItem(client)
            except (AttributeError, ValueError, TypeError, KeyError):
                _lean[client] = None
        return _lean[client]


def put_item(client: Any, params: dict[str, Any]) -> dict[str, Any]:
    """``client.put_item(**params)`` through the lean path where the client has one."""
    lean = lean_for(client)
    if lean is None:
        return client.put_item(**params)
    return lean.put_item(params)
