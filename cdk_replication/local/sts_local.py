"""A minimal local STS endpoint: ``AssumeRole`` and ``GetCallerIdentity``, enough for cross-account writes.

Assuming a role returns the access key of the role's account (:func:`credentials_for_account`), so a
function that assumes a writer role in another account writes that account's database in DynamoDB Local,
exactly as the role's credentials would on AWS. Roles the deployment does not know are refused with
``AccessDenied``, so a wrong role ARN fails locally as it would on AWS.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from cdk_replication.local.dynamodb_local import credentials_for_account

_ROLE_ARN = re.compile(r"^arn:[^:]+:iam::(?P<account>\d{12}):role/(?:.*/)?(?P<name>[^/]+)$")
_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
#: Lifetime of the credentials handed out, in seconds (STS's default).
SESSION_SECONDS = 3600


class LocalSts:
    """An STS endpoint on a free loopback port, served from a background thread.

    Args:
        known_roles: ARNs of the roles that exist; ``None`` accepts any well-formed role ARN.
    """

    def __init__(self, known_roles: set[str] | None = None) -> None:
        self.known_roles = known_roles
        self.calls: list[dict[str, str]] = []
        sts = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - name fixed by BaseHTTPRequestHandler
                length = int(self.headers.get("content-length", 0))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                status, body = sts.handle(form, self.headers.get("authorization", ""))
                data = body.encode()
                self.send_response(status)
                self.send_header("content-type", "text/xml")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass  # no access log on the terminal

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-sts", daemon=True)
        self._thread.start()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def handle(self, form: dict[str, str], authorization: str) -> tuple[int, str]:
        """(HTTP status, XML body) for one STS query request."""
        self.calls.append(form)
        action = form.get("Action")
        caller = re.search(r"Credential=LOCAL(\d{12})/", authorization)
        caller_account = caller.group(1) if caller else "000000000000"
        if action == "GetCallerIdentity":
            return 200, _wrap(action, f"<Account>{caller_account}</Account><UserId>LOCAL</UserId>"
                                      f"<Arn>arn:aws:iam::{caller_account}:user/local</Arn>")
        if action != "AssumeRole":
            return 400, _error("InvalidAction", f"the local STS does not implement {action!r}")
        role_arn = form.get("RoleArn", "")
        match = _ROLE_ARN.match(role_arn)
        if match is None:
            return 400, _error("ValidationError", f"RoleArn {role_arn!r} is not a role ARN")
        if self.known_roles is not None and role_arn not in self.known_roles:
            return 403, _error(
                "AccessDenied",
                f"User: arn:aws:iam::{caller_account}:local is not authorized to perform: sts:AssumeRole on "
                f"resource: {role_arn} (no such role in the local deployment)",
            )
        creds = credentials_for_account(match["account"])
        session = form.get("RoleSessionName", "session")
        expires = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=SESSION_SECONDS)).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
        result = (
            f"<Credentials><AccessKeyId>{creds.access_key_id}</AccessKeyId>"
            f"<SecretAccessKey>{creds.secret_access_key}</SecretAccessKey>"
            f"<SessionToken>local-session</SessionToken><Expiration>{expires}</Expiration></Credentials>"
            f"<AssumedRoleUser><AssumedRoleId>AROALOCAL:{escape(session)}</AssumedRoleId>"
            f"<Arn>arn:aws:sts::{match['account']}:assumed-role/{escape(match['name'])}/{escape(session)}</Arn>"
            "</AssumedRoleUser>"
        )
        return 200, _wrap(action, result)


def _wrap(action: str, result: str) -> str:
    return (f'<{action}Response xmlns="{_NS}"><{action}Result>{result}</{action}Result>'
            f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata></{action}Response>")


def _error(code: str, message: str) -> str:
    return (f'<ErrorResponse xmlns="{_NS}"><Error><Type>Sender</Type><Code>{code}</Code>'
            f"<Message>{escape(message)}</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>")
