"""Naming tables on the command line, connecting to them, and checking them before anything is written."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from cdk_replication.cli.errors import (
    ACCESS_ERROR_CODES,
    LOCAL_CREDENTIALS_HINT,
    BadInput,
    error_code,
    error_message,
)
from cdk_replication.cli.items import KeySchema

_NAME = r"[A-Za-z0-9_.-]{3,255}"
_ARN_RE = re.compile(rf"^arn:(aws[a-z-]*):dynamodb:([a-z0-9-]+):(\d{{12}}):table/({_NAME})$")
_REGION_NAME_RE = re.compile(rf"^([a-z]{{2}}(?:-[a-z]+)+-\d+):({_NAME})$")
_NAME_RE = re.compile(rf"^{_NAME}$")

# DynamoDB Local writes this account into every ARN, whichever access key selected the database.
_DYNAMODB_LOCAL_ACCOUNT = "000000000000"
#: The account DynamoDB Local reports in every ARN (no account can be told from it).
PLACEHOLDER_ACCOUNT = _DYNAMODB_LOCAL_ACCOUNT


@dataclass(frozen=True)
class TableRef:
    """A table as the user named it: ``name``, ``region:name`` or a full table ARN."""

    name: str
    region: str | None = None
    account: str | None = None
    arn: str | None = None

    @classmethod
    def parse(cls, text: str, role: str = "table") -> "TableRef":
        """Parse ``text``; ``role`` (``source``/``target``) only shapes the error message."""
        match = _ARN_RE.match(text)
        if match:
            return cls(name=match.group(4), region=match.group(2), account=match.group(3), arn=text)
        match = _REGION_NAME_RE.match(text)
        if match:
            return cls(name=match.group(2), region=match.group(1))
        if _NAME_RE.match(text):
            return cls(name=text)
        raise BadInput(
            f"{role} {text!r} is not a table: give NAME, REGION:NAME (us-west-2:orders) or a table ARN "
            "(arn:aws:dynamodb:us-west-2:123456789012:table/orders); names are 3-255 of A-Z a-z 0-9 _ . -"
        )

    @property
    def api_name(self) -> str:
        """What to pass as ``TableName``: the ARN when given (DynamoDB resolves it, also across accounts
        with a resource-based policy), otherwise the name."""
        return self.arn or self.name


@dataclass(frozen=True)
class Connection:
    """How to reach AWS (or an emulator) for one side of a copy.

    Attributes:
        profile: named profile from ``~/.aws/config``; default: the standard credential chain.
        region: region for table names without one; default: the profile's, ``AWS_DEFAULT_REGION``, then
            ``AWS_REGION``.
        endpoint_url: endpoint for every service (DynamoDB Local, moto); default: AWS.
        max_attempts: attempts per request of clients that leave retrying to botocore (control-plane calls
            such as UpdateTable or DescribeExport), default 10.
    """

    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    max_attempts: int = 10
    _sessions: dict[str | None, Any] = field(default_factory=dict, compare=False, repr=False)

    def session(self) -> Any:
        """A boto3 session for :attr:`profile`, created once."""
        import boto3
        from botocore.exceptions import ProfileNotFound

        if self.profile not in self._sessions:
            try:
                self._sessions[self.profile] = boto3.session.Session(profile_name=self.profile)
            except ProfileNotFound:
                raise BadInput(
                    f"AWS profile {self.profile!r} is not configured: check `aws configure list-profiles` "
                    "or pass another --profile"
                ) from None
        return self._sessions[self.profile]

    def client(self, service: str, region: str | None, *, pool: int = 10, own_retries: bool = False) -> Any:
        """A client for ``service`` in ``region`` (default: :attr:`region`, then the profile's).

        Args:
            pool: HTTP connections kept open; at least the number of threads that share the client.
            own_retries: turn botocore's retries off because the caller retries throttling itself.
        """
        from botocore.config import Config
        from botocore.exceptions import InvalidRegionError, NoRegionError

        retries = {"max_attempts": 1} if own_retries else {"max_attempts": self.max_attempts, "mode": "standard"}
        config = Config(retries=retries, max_pool_connections=max(pool, 10))  # type: ignore[arg-type]
        session = self.session()
        # botocore reads AWS_DEFAULT_REGION and the profile; AWS_REGION (set by Lambda, CodeBuild and the
        # other SDKs) is honoured as a last resort so the command behaves like the rest of the toolchain.
        region = region or self.region or session.region_name or os.environ.get("AWS_REGION") or None
        try:
            return session.client(service, region_name=region, endpoint_url=self.endpoint_url, config=config)
        except NoRegionError:
            raise BadInput(
                "no AWS region: pass --region, name the table as REGION:NAME, or set AWS_DEFAULT_REGION"
            ) from None
        except InvalidRegionError:
            # --region is checked while parsing; this one came from the profile or the environment.
            raise BadInput(
                f"region {region!r} (from the profile, AWS_DEFAULT_REGION or AWS_REGION) is not a region name: "
                "fix it or pass --region"
            ) from None
        except ValueError as exc:
            if "endpoint" not in str(exc).lower():
                raise
            # --endpoint-url is checked while parsing; this one came from AWS_ENDPOINT_URL* or the profile.
            raise BadInput(
                f"{exc} (from the profile or AWS_ENDPOINT_URL*): give a URL with its scheme, e.g. "
                "http://127.0.0.1:8000, or pass --endpoint-url"
            ) from None


@dataclass(frozen=True)
class TableInfo:
    """What DescribeTable says about a table, reduced to what the commands need."""

    ref: TableRef
    region: str
    arn: str
    key: KeySchema
    item_count: int
    description: dict[str, Any]
    #: Set when the table was named by an ARN whose account could not be compared with the table's (DynamoDB
    #: Local reports one placeholder account for every table): one line for the user, instead of a silent pass.
    account_note: str | None = None

    @property
    def stream_view_type(self) -> str | None:
        """``NEW_AND_OLD_IMAGES`` etc. when the table's stream is on, else ``None``."""
        spec = self.description.get("StreamSpecification") or {}
        return spec.get("StreamViewType") if spec.get("StreamEnabled") else None

    def label(self) -> str:
        """``name (region)``, for messages."""
        return f"{self.ref.name} ({self.region})"


class TableHandle:
    """A described table and a data-plane client for it (threads may share it)."""

    def __init__(self, info: TableInfo, client: Any) -> None:
        self.info = info
        self.client = client

    @property
    def name(self) -> str:
        """The ``TableName`` argument for data-plane calls."""
        return self.info.ref.api_name


def key_schema_of(description: dict[str, Any]) -> KeySchema:
    """The :class:`KeySchema` in a DescribeTable ``Table`` description."""
    types = {a["AttributeName"]: a["AttributeType"] for a in description["AttributeDefinitions"]}
    partition = next(k["AttributeName"] for k in description["KeySchema"] if k["KeyType"] == "HASH")
    sort = next((k["AttributeName"] for k in description["KeySchema"] if k["KeyType"] == "RANGE"), None)
    return KeySchema(partition, types[partition], sort, types[sort] if sort else None)


def _denied(action: str, what: str, exc: BaseException) -> BadInput:
    return BadInput(
        f"access denied: {action} on {what} ({error_code(exc)}: {error_message(exc)}); check the credentials "
        f"(--profile / --source-profile / --target-profile) and grant dynamodb:{action.split(' ')[0]} on it"
    )


def describe_table(conn: Connection, ref: TableRef, role: str, *, pool: int = 10) -> TableHandle:
    """Describe ``ref`` and return it with a client; unknown tables and refusals become :class:`BadInput`.

    When the table was named by ARN, the account in the ARN must be the account DynamoDB reports for the
    table. DynamoDB Local reports 000000000000 for every account, so there the check cannot be made:
    :attr:`TableInfo.account_note` then says so (an emulator that reports the real account is checked).
    """
    from botocore.exceptions import ClientError, NoCredentialsError

    region = ref.region or conn.region
    client = conn.client("dynamodb", region, pool=pool, own_retries=True)
    region = client.meta.region_name
    where = f"{role} table {ref.name!r} in region {region}"
    try:
        description = client.describe_table(TableName=ref.api_name)["Table"]
    except NoCredentialsError:
        raise BadInput(
            "no AWS credentials found: pass --profile, set AWS_PROFILE, or configure credentials"
            + (LOCAL_CREDENTIALS_HINT if conn.endpoint_url else "")
        ) from None
    except ClientError as exc:
        code = error_code(exc)
        if ref.account and (code == "ResourceNotFoundException" or code in ACCESS_ERROR_CODES):
            raise BadInput(
                f"{where} of account {ref.account} cannot be read ({code}): use credentials of account "
                f"{ref.account} (--profile / --source-profile / --target-profile), or let these credentials in "
                "with a resource-based policy on the table"
            ) from None
        if code == "ResourceNotFoundException":
            raise BadInput(
                f"{where} does not exist (or not in this account): check the name, the region (--region or "
                "REGION:NAME) and the credentials' account (`aws sts get-caller-identity`)"
                + (LOCAL_CREDENTIALS_HINT if conn.endpoint_url else "")
            ) from None
        if code in ACCESS_ERROR_CODES:
            raise _denied("DescribeTable", where, exc) from None
        raise
    arn = description["TableArn"]
    account_note = _check_account(ref, arn, role, where)
    if description.get("TableStatus") not in ("ACTIVE", "UPDATING"):
        raise BadInput(f"{where} is {description.get('TableStatus')}; wait until it is ACTIVE and retry")
    info = TableInfo(
        ref=ref,
        region=region,
        arn=arn,
        key=key_schema_of(description),
        item_count=int(description.get("ItemCount") or 0),
        description=description,
        account_note=account_note,
    )
    return TableHandle(info, client)


def _check_account(ref: TableRef, arn: str, role: str, where: str) -> str | None:
    """Refuse a table named by an ARN whose account is not the table's; returns a note instead when the
    endpoint reports DynamoDB Local's placeholder account, which cannot be compared (``None`` otherwise)."""
    if not ref.account:
        return None
    actual = arn.split(":")[4]
    if actual == _DYNAMODB_LOCAL_ACCOUNT and ref.account != _DYNAMODB_LOCAL_ACCOUNT:
        return (
            f"note: the account in the {role} table's ARN ({ref.account}) could not be checked: the endpoint "
            f"reports the placeholder account {_DYNAMODB_LOCAL_ACCOUNT} for {ref.name!r} (DynamoDB Local), so "
            "the credentials decide which account's table is used"
        )
    if actual != ref.account:
        raise BadInput(
            f"{where} belongs to account {actual}, not {ref.account} as its ARN says: use credentials "
            "of the right account (--profile / --source-profile / --target-profile)"
        )
    return None


def check_same_key(source: TableInfo, target: TableInfo) -> None:
    """Refuse a copy between tables whose primary keys differ in names or types."""
    if source.key != target.key:
        raise BadInput(
            f"key schema mismatch: source {source.label()} has {source.key.describe()}, target "
            f"{target.label()} has {target.key.describe()}; create the target with the same key schema"
        )


def check_distinct(source: TableInfo, target: TableInfo, same_credentials: bool) -> None:
    """Refuse a copy of a table onto itself.

    Emulators report one fixed account in every ARN, so two tables are only the same when the ARN, the
    region and the credentials (profile) all match.
    """
    if source.arn == target.arn and source.region == target.region and same_credentials:
        raise BadInput(f"source and target are the same table ({source.arn}): name a different target")


def probe_read(handle: TableHandle, role: str) -> None:
    """Prove Scan is allowed (a one-item scan) before anything is written."""
    from botocore.exceptions import ClientError

    try:
        handle.client.scan(TableName=handle.name, Limit=1)
    except ClientError as exc:
        if error_code(exc) in ACCESS_ERROR_CODES:
            raise _denied("Scan", f"{role} table {handle.info.label()}", exc) from None
        raise


def probe_batch_get(handle: TableHandle, role: str) -> None:
    """Prove BatchGetItem is allowed (one key that no application uses) before anything is written."""
    from botocore.exceptions import ClientError

    try:
        handle.client.batch_get_item(RequestItems={handle.name: {"Keys": [handle.info.key.probe_key()]}})
    except ClientError as exc:
        if error_code(exc) in ACCESS_ERROR_CODES:
            raise _denied("BatchGetItem", f"{role} table {handle.info.label()}", exc) from None
        raise


def probe_write(handle: TableHandle, role: str, *, delete: bool = False) -> None:
    """Prove PutItem (and DeleteItem when ``delete``) is allowed without writing anything.

    DynamoDB checks authorization before it evaluates a condition, so a request whose condition can
    never hold answers ConditionalCheckFailed when allowed and AccessDenied when not.
    """
    from botocore.exceptions import ClientError

    key = handle.info.key.probe_key()
    never = "attribute_exists(#pk) AND attribute_not_exists(#pk)"
    names = {"#pk": handle.info.key.partition_key}
    calls: list[tuple[str, dict[str, Any]]] = [("PutItem", {"Item": key})]
    if delete:
        calls.append(("DeleteItem", {"Key": key}))
    for action, args in calls:
        method = handle.client.put_item if action == "PutItem" else handle.client.delete_item
        try:
            method(TableName=handle.name, ConditionExpression=never, ExpressionAttributeNames=names, **args)
        except ClientError as exc:
            code = error_code(exc)
            if code == "ConditionalCheckFailedException":
                continue
            if code in ACCESS_ERROR_CODES:
                raise _denied(action, f"{role} table {handle.info.label()}", exc) from None
            raise
        raise RuntimeError(f"permission probe unexpectedly wrote to {handle.info.label()}: {key!r}")
