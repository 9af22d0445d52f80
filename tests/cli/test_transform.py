"""Every command-line path applies the replica's transform (issue 15), and none sends a raw value to TARGET.

Tables are DynamoDB Local's; the published ``replicator`` parameter and the HMAC secret are served by a moto
server (``AWS_ENDPOINT_URL_SSM`` / ``AWS_ENDPOINT_URL_SECRETS_MANAGER``), as the CLI reaches them on AWS with
the source's credentials. DynamoDB Local has no tags: the commands reach it through the local runtime's gateway
(:func:`tag_store`), which keeps them and serves TagResource/ListTagsOfResource as DynamoDB does. Every HTTP request the CLI sends is recorded at botocore's HTTP layer
(:class:`Requests`); the leak check fails if a request that names TARGET carries a masked attribute's original
value, a dropped attribute's value, or a dropped attribute's name.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

from cdk_replication._lambda.replicator.transform import Transform, with_digest
from cdk_replication.cli import main
from cdk_replication.cli.transforms import TRANSFORM_TAG, replicator_parameter
from cdk_replication.local import DEFAULT_ACCOUNT, credentials_for_account
from cdk_replication.local.gateway import Gateway
from cdk_replication.transform import TRANSFORM_TAG_VALUE

from .conftest import CliRun
from .helpers import REGION, put_many, scan_all
from .redrive_helpers import failure_record, stream_records, write_record
from .test_migrate import moto_url

__all__ = ["moto_url"]  # a fixture (a moto server per module), imported for pytest

#: What the source holds that must never reach TARGET: emails (hashed), street addresses (removed).
EMAILS = [f"person{i}@example.com" for i in range(12)]
ADDRESSES = [f"{i} Secret Street, Springfield" for i in range(12)]
SECRET_VALUE = "rotate-me-0123456789abcdef"


@dataclass
class Requests:
    """Every HTTP request botocore sends in this process: ``(url, body text)``."""

    sent: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def naming(self, table: str) -> list[str]:
        """Bodies of the requests that name ``table`` (by name or ARN): the requests TARGET receives."""
        with self.lock:
            return [body for _, body in self.sent if f'"{table}"' in body or f"table/{table}" in body]


@pytest.fixture()
def requests(monkeypatch: pytest.MonkeyPatch) -> Requests:
    """Record every request of every boto3 client (the CLI runs in-process)."""
    from botocore.httpsession import URLLib3Session

    recorded = Requests()
    original = URLLib3Session.send

    def send(self: Any, request: Any) -> Any:
        body = request.body
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
        with recorded.lock:
            recorded.sent.append((request.url, text))
        return original(self, request)

    monkeypatch.setattr(URLLib3Session, "send", send)
    return recorded


def assert_no_leak(requests: Requests, target: str, *, dropped_names: tuple[str, ...] = ("address",)) -> None:
    """Fail if a request naming ``target`` carries an original email, an address, or a dropped name."""
    bodies = requests.naming(target)
    assert bodies, f"no request named {target}: the recorder sees nothing"
    forbidden = [*EMAILS, *ADDRESSES, *(f'"{name}"' for name in dropped_names)]
    for body in bodies:
        for value in forbidden:
            assert value not in body, f"{value!r} reached the target in {body[:300]}"


@dataclass
class Published:
    """The source account's side of a transformed replica: the secret and the published parameter."""

    ssm: Any
    secrets: Any
    secret_arn: str

    def publish(self, source: str, target: str, spec: dict[str, Any] | None, *, listed: bool = True) -> None:
        """Publish ``/cdk-replication/<source>/replicator`` with ``target``'s entry (its ``transform``)."""
        arn = f"arn:aws:dynamodb:{REGION}:111111111111:table/{target}"
        targets = [{"table": arn, "status": "ACTIVE", "transform": spec}] if listed else []
        document = {"version": 1, "mode": "ONE_WAY", "changeSource": "DYNAMODB_STREAMS", "targets": targets,
                    "source": f"arn:aws:dynamodb:{REGION}:111111111111:table/{source}", "function": "replicator",
                    "metadataPrefix": "_rep_", "conflictAttribute": None, "conflictStrategy": None}
        self.ssm.put_parameter(Name=replicator_parameter(source), Value=json.dumps(document, sort_keys=True),
                               Type="String", Overwrite=True)

    def rotate(self, value: str) -> None:
        """A new version of the HMAC secret (what a rotation does)."""
        self.secrets.put_secret_value(SecretId=self.secret_arn, SecretString=value)


@pytest.fixture()
def published(moto_url: str, local: Any, monkeypatch: pytest.MonkeyPatch) -> Published:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", moto_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto_url)
    session = boto3.session.Session(region_name=REGION)
    secrets = session.client("secretsmanager", endpoint_url=moto_url)
    name = f"hmac-{threading.get_ident()}-{id(monkeypatch)}"
    arn = secrets.create_secret(Name=name, SecretString=SECRET_VALUE)["ARN"]
    return Published(session.client("ssm", endpoint_url=moto_url), secrets, arn)


def spec_for(secret_arn: str, *, hash_key: bool = False) -> dict[str, Any]:
    """Production to development: active customers only, emails hashed, addresses removed."""
    masks: dict[str, Any] = {"email": {"kind": "hmac"}, "address": {"kind": "remove"}}
    if hash_key:
        masks["pk"] = {"kind": "hmac"}
    return with_digest({"version": 1, "filter": {"op": "eq", "attr": "status", "value": {"S": "active"}},
                        "keep": None, "drop": None, "masks": masks, "secretArn": secret_arn})


def customers(n: int = 12) -> list[dict[str, Any]]:
    """Source items; every third is ``inactive`` (filtered out)."""
    return [{"pk": {"S": f"c{i:03}"}, "email": {"S": EMAILS[i]}, "address": {"S": ADDRESSES[i]},
             "status": {"S": "inactive" if i % 3 == 2 else "active"}, "n": {"N": str(i)}} for i in range(n)]


def expected(items: list[dict[str, Any]], spec: dict[str, Any], secret: str = SECRET_VALUE) -> dict[Any, Any]:
    """What the replica must hold for ``items``, keyed like :func:`scan_all`."""
    transform = Transform.from_spec(spec, secret.encode("utf-8"), ("pk",))
    out = {}
    for item in items:
        shaped = transform.apply(item)
        if shaped is not None:
            out[(shaped["pk"]["S"],)] = shaped
    return out


#: The running test's gateway (set by :func:`tag_store`): :func:`tag` tags tables through it.
_GATEWAY: list[Gateway] = []


@pytest.fixture(autouse=True)
def tag_store(local: Any) -> Iterator[Gateway]:
    """The local runtime's gateway in front of DynamoDB Local. It keeps table tags (DynamoDB Local has none), so
    the CLI reads TARGET's tag with the real ListTagsOfResource, IAM-evaluated as on AWS (rule 9)."""
    with Gateway(local) as gateway:
        _GATEWAY[:] = [gateway]
        yield gateway
        _GATEWAY.clear()


def _runner(endpoint: str) -> Callable[..., CliRun]:
    def run(command: str, *args: str) -> CliRun:
        out, err = io.StringIO(), io.StringIO()
        code = main([command, "--endpoint-url", endpoint, "--quiet", *args], stdout=out, stderr=err)
        return CliRun(code, out.getvalue(), err.getvalue())

    return run


@pytest.fixture()
def cli(tag_store: Gateway, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliRun]:
    """The command line in-process, through the gateway (tables, tags), in a temporary working directory."""
    monkeypatch.chdir(tmp_path)
    return _runner(tag_store.endpoint_url)


@pytest.fixture()
def untagged_cli(local: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliRun]:
    """The command line straight at DynamoDB Local, an endpoint without tags ("Tagging is not currently
    supported")."""
    monkeypatch.chdir(tmp_path)
    return _runner(local.endpoint_url)


@pytest.fixture()
def pair(make_table: Callable[..., str], ddb: Any) -> tuple[str, str]:
    source, target = make_table("tf-src"), make_table("tf-tgt", stream=False)
    return source, target


def tag(ddb: Any, table: str) -> None:
    """Tag ``table`` as the construct tags a transformed replica (a fixed marker, nothing about the spec), with
    TagResource through the gateway."""
    creds = credentials_for_account(DEFAULT_ACCOUNT)
    client = boto3.client("dynamodb", region_name=REGION, endpoint_url=_GATEWAY[0].endpoint_url,
                          aws_access_key_id=creds.access_key_id, aws_secret_access_key=creds.secret_access_key)
    client.tag_resource(ResourceArn=f"arn:aws:dynamodb:{REGION}:{DEFAULT_ACCOUNT}:table/{table}",
                        Tags=[{"Key": TRANSFORM_TAG, "Value": TRANSFORM_TAG_VALUE}])


def transformed_pair(ddb: Any, pair: tuple[str, str], published: Published, count: int, *,
                     hash_key: bool = False) -> tuple[str, str, dict[str, Any], list[dict[str, Any]]]:
    """What the construct deploys for a masked replica (the spec published, TARGET tagged with its digest),
    with ``count`` customers in SOURCE; returns source, target, spec and the items."""
    source, target = pair
    spec = spec_for(published.secret_arn, hash_key=hash_key)
    published.publish(source, target, spec)
    tag(ddb, target)
    items = customers(count)
    put_many(ddb, source, items)
    return source, target, spec, items


def test_backfill_writes_transformed_items_and_verify_is_clean(
        cli: Any, ddb: Any, pair: tuple[str, str], published: Published, requests: Requests) -> None:
    source, target, spec, items = transformed_pair(ddb, pair, published, 12)

    run = cli("backfill", source, target, "--json")

    assert run.code == 0, run.err
    assert run.json()["counts"] == {"scanned": 12, "copied": 8, "skipped": 0, "resynced": 0, "failed": 0,
                                    "filtered": 4}
    assert scan_all(ddb, target) == expected(items, spec)
    checked = cli("verify", source, target, "--json")
    assert checked.code == 0, checked.out
    assert checked.json()["filteredOut"] == 4 and checked.json()["matching"] == 8
    assert_no_leak(requests, target)


def test_repair_writes_transformed_state_and_deletes_filtered_items(
        cli: Any, ddb: Any, pair: tuple[str, str], published: Published, requests: Requests) -> None:
    """TARGET holds a raw copy (a leak to be fixed), a filtered-out item and misses one: verify lists them
    against the TRANSFORMED source; --repair brings each to the transformed state."""
    source, target, spec, items = transformed_pair(ddb, pair, published, 6)
    want = expected(items, spec)
    put_many(ddb, target, [want[("c000",)], items[1], items[2]])  # c001 raw, c002 is filtered out, c003.. missing
    requests.sent.clear()

    found = cli("verify", source, target, "--json")
    assert found.code == 1
    doc = found.json()
    assert [k["pk"]["S"] for k in doc["extra"]] == ["c002"]
    assert [k["pk"]["S"] for k in doc["different"]] == ["c001"]
    assert doc["differentAttributes"] == [["address", "email"]]
    assert sorted(k["pk"]["S"] for k in doc["missing"]) == ["c003", "c004"]
    requests.sent.clear()  # the raw item in TARGET is read back by verify; what the repair SENDS must be clean

    fixed = cli("verify", source, target, "--repair", "--json")

    assert fixed.code == 0, fixed.out
    assert scan_all(ddb, target) == want
    # The repair's conditions repeat what TARGET held (here a raw item planted by the test, not sent by us); the
    # items it writes must be transformed.
    written = [json.dumps(json.loads(b)["Item"]) for b in requests.naming(target) if '"Item"' in b]
    assert len(written) >= 3 and not any(v in w for w in written for v in [*EMAILS, *ADDRESSES, '"address"'])


def test_redrive_resyncs_with_the_transform(cli: Any, local: Any, ddb: Any, pair: tuple[str, str],
                                           published: Published, requests: Requests, tmp_path: Any) -> None:
    """The failure record (source account's bucket) holds raw images; redrive writes only transformed items."""
    source, target, spec, items = transformed_pair(ddb, pair, published, 3)
    records, shard, arn = stream_records(local, ddb, source)
    folder = tmp_path / "bucket"
    write_record(folder, failure_record(records, shard, arn), shard)
    requests.sent.clear()

    run = cli("redrive", source, target, "--from-dir", str(folder), "--json")

    assert run.code == 0, run.err
    assert scan_all(ddb, target) == expected(items, spec)
    assert_no_leak(requests, target)


@pytest.mark.parametrize("case", ["no-parameter", "not-listed", "untransformed-entry"])
def test_tagged_target_is_never_written_without_its_transform(
        cli: Any, ddb: Any, pair: tuple[str, str], published: Published, case: str) -> None:
    source, target = pair
    spec = spec_for(published.secret_arn)
    tag(ddb, target)
    if case == "not-listed":
        published.publish(source, target, spec, listed=False)
    elif case == "untransformed-entry":
        published.publish(source, target, None)
    put_many(ddb, source, customers(3))

    for command in (["backfill"], ["verify", "--repair"]):
        run = cli(*command, source, target)
        assert run.code == 2, (case, command, run.err)
        assert TRANSFORM_TAG in run.err and "nothing was written" in run.err
        if case == "no-parameter":
            assert replicator_parameter(source) in run.err and "--transform-spec" in run.err
    assert scan_all(ddb, target) == {}


def test_untagged_target_gets_the_published_transform(
        cli: Any, ddb: Any, pair: tuple[str, str], published: Published) -> None:
    """Safe by default: a replica whose tag is missing still gets the transform its source publishes."""
    source, target = pair
    spec = spec_for(published.secret_arn)
    published.publish(source, target, spec)
    items = customers(3)
    put_many(ddb, source, items)

    run = cli("backfill", source, target, "--json")

    assert run.code == 0, run.err
    assert any("not tagged" in note for note in run.json()["notes"])
    assert scan_all(ddb, target) == expected(items, spec)


def test_an_endpoint_without_tags_leaves_the_published_parameter_to_decide(
        untagged_cli: Any, ddb: Any, pair: tuple[str, str], published: Published, requests: Requests) -> None:
    """DynamoDB Local itself keeps no tags (UnknownOperationException): the published transform still applies."""
    source, target = pair
    spec = spec_for(published.secret_arn)
    published.publish(source, target, spec)
    items = customers(6)
    put_many(ddb, source, items)

    assert untagged_cli("backfill", source, target).code == 0
    assert scan_all(ddb, target) == expected(items, spec)
    assert_no_leak(requests, target)


def test_transform_spec_file_for_a_table_outside_a_replicated_table(
        cli: Any, ddb: Any, pair: tuple[str, str], published: Published, tmp_path: Any) -> None:
    source, target = pair
    spec = spec_for(published.secret_arn)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    items = customers(3)
    put_many(ddb, source, items)

    run = cli("backfill", source, target, "--transform-spec", str(path))

    assert run.code == 0, run.err
    assert scan_all(ddb, target) == expected(items, spec)


def test_migrate_refuses_a_transformed_replica(cli: Any, ddb: Any, pair: tuple[str, str],
                                                published: Published) -> None:
    source, _ = pair
    spec = spec_for(published.secret_arn)
    published.publish(source, "dev-copy", spec)

    run = cli("migrate", source, "dev-copy", "--s3-bucket", "exports")

    assert run.code == 2, run.err
    assert "backfill" in run.err and "export" in run.err and "nothing was written" in run.err


def test_multi_active_options_are_refused_for_a_transformed_replica(
        cli: Any, ddb: Any, pair: tuple[str, str], published: Published) -> None:
    source, target = pair
    spec = spec_for(published.secret_arn)
    published.publish(source, target, spec)
    tag(ddb, target)

    run = cli("verify", source, target, "--repair", "--conflict-attribute", "updatedAt")

    assert run.code == 2 and "one-way only" in run.err


def test_the_leak_check_fails_against_a_repair_that_writes_the_raw_item(
        cli: Any, ddb: Any, pair: tuple[str, str], published: Published, requests: Requests,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The mutant: ``verify --repair`` forgets the transform (writes SOURCE's item as it is). The leak check
    must catch it, or it proves nothing."""
    from cdk_replication.cli import repair
    from cdk_replication.cli.transforms import IDENTITY

    source, target = pair
    spec = spec_for(published.secret_arn)
    published.publish(source, target, spec)
    tag(ddb, target)
    put_many(ddb, source, customers(3))
    real_init = repair.Repairer.__init__

    def raw_repairer(self: Any, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        self.view = IDENTITY  # the mutation

    monkeypatch.setattr(repair.Repairer, "__init__", raw_repairer)
    requests.sent.clear()
    assert cli("verify", source, target, "--repair").code in (0, 1)
    with pytest.raises(AssertionError, match="reached the target"):
        assert_no_leak(requests, target)


def test_a_spec_file_for_a_tagged_target_must_be_the_published_spec(
        cli: Any, ddb: Any, pair: tuple[str, str], published: Published, tmp_path: Any) -> None:
    """``--transform-spec`` does not get around the safety net: a tagged TARGET's spec is the published one."""
    source, target, spec, items = transformed_pair(ddb, pair, published, 3)
    other = with_digest({**spec, "masks": {"email": {"kind": "hmac"}}})  # forgets to remove the addresses
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(other))

    run = cli("backfill", source, target, "--transform-spec", str(path))

    assert run.code == 2 and "drop --transform-spec" in run.err and other["digest"] in run.err
    assert scan_all(ddb, target) == {}
    path.write_text(json.dumps(spec))  # the published spec itself is accepted
    assert cli("backfill", source, target, "--transform-spec", str(path)).code == 0
    assert scan_all(ddb, target) == expected(items, spec)


def test_a_tagged_target_gets_the_published_spec_whatever_it_is(
        cli: Any, ddb: Any, pair: tuple[str, str], published: Published, requests: Requests) -> None:
    """The tag names no spec: the published parameter (changed only once the replicator's new configuration is
    live) is the truth, so a newer spec there is applied, not refused."""
    source, target, spec, items = transformed_pair(ddb, pair, published, 6)
    newer = with_digest({**spec, "filter": None})
    published.publish(source, target, newer)

    assert cli("backfill", source, target).code == 0
    assert scan_all(ddb, target) == expected(items, newer)
    assert_no_leak(requests, target)


def test_backfill_takes_back_a_copy_whose_source_stopped_matching_during_the_copy(
        cli: Any, ddb: Any, pair: tuple[str, str], published: Published, monkeypatch: pytest.MonkeyPatch) -> None:
    """c000 is scanned while active and turns inactive before its write: the write stands only if the
    TRANSFORMED source still equals what was written, so the check deletes the copy (resynced)."""
    from cdk_replication.cli import backfill

    source, target, spec, items = transformed_pair(ddb, pair, published, 3)
    real_copy = backfill._Backfill.copy_item

    def copy_item(self: Any, item: dict[str, Any]) -> Any:
        if item["pk"]["S"] == "c000":  # the application changes it between the scan and the write
            ddb.put_item(TableName=source, Item={**item, "status": {"S": "inactive"}})
        return real_copy(self, item)

    monkeypatch.setattr(backfill._Backfill, "copy_item", copy_item)

    run = cli("backfill", source, target, "--json")

    assert run.code == 0, run.err
    assert run.json()["counts"]["resynced"] == 1
    assert set(scan_all(ddb, target)) == {("c001",)}  # c002 is inactive from the start
