"""``pgpatterns doctor`` and ``pgpatterns diff`` from the command line (in-process ``main``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from pgpatterns.cli import main
from pgpatterns.doctor import LINTS
from pgpatterns.testing import Database
from pgpatterns.testing.plugin import PgSchema

sys.path.insert(0, str(Path(__file__).parents[1] / "doctor"))
from doctor_planted import plant


def _url(db: Database) -> str:
    return db.url.render_as_string(hide_password=False)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def planted(pg_schema: PgSchema, pg_database: Database) -> tuple[str, set[tuple[str, str]]]:
    return pg_schema.name, plant(pg_schema.engine, pg_schema.name, pg_database.app_role)


def test_json_report_baseline_and_exit_codes(
    planted: tuple[str, set[tuple[str, str]]], pg_database: Database, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    schema, want = planted
    url = _url(pg_database)
    code, out, _ = _run(capsys, "doctor", url, "--schema", schema, "--format", "json")
    assert code == 1
    report = json.loads(out)
    assert report["version"] == 1 and report["schemas"] == [schema]
    assert "***" in report["database"] and pg_database.url.password not in report["database"] \
        if pg_database.url.password else True
    assert {(f["id"], f["object"]) for f in report["findings"]} == want
    assert sum(report["summary"].values()) == len(want)
    for f in report["findings"]:
        assert set(f) == {"id", "severity", "object", "message", "evidence", "pattern", "fix",
                          "fingerprint"}
        assert f["fingerprint"] == f"{f['id']}:{f['object']}"
    # only warnings selected, failing on errors: exit 0
    code, out, _ = _run(capsys, "doctor", url, "--schema", schema, "--lint", "no_primary_key",
                        "--fail-on", "error")
    assert code == 0 and "no_primary_key" in out and "fix: ALTER TABLE" in out
    # a baseline of today's findings: nothing new, exit 0
    baseline = tmp_path / "baseline.json"
    assert main(["doctor", url, "--schema", schema, "--format", "json",
                 "-o", str(baseline)]) == 1
    code, out, _ = _run(capsys, "doctor", url, "--schema", schema, "--baseline", str(baseline))
    assert (code, out.strip()) == (0, "no findings")
    # a new problem is reported on top of the baseline
    with pg_database_engine(pg_database) as conn:
        conn.execute(text(f"CREATE TABLE {schema}.fresh (x int)"))
    code, out, _ = _run(capsys, "doctor", url, "--schema", schema, "--baseline", str(baseline),
                        "--format", "json")
    assert code == 1
    assert [(f["id"], f["object"]) for f in json.loads(out)["findings"]] == [
        ("no_primary_key", f"{schema}.fresh")]


def pg_database_engine(db: Database) -> Any:
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    return create_engine(db.url, poolclass=NullPool).begin()


def test_sarif_report(planted: tuple[str, set[tuple[str, str]]], pg_database: Database,
                      capsys: pytest.CaptureFixture[str]) -> None:
    schema, want = planted
    code, out, _ = _run(capsys, "doctor", _url(pg_database), "--schema", schema,
                        "--format", "sarif")
    assert code == 1
    log = json.loads(out)
    # SARIF 2.1.0's required structure (the schema itself is not shipped offline; see notes)
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-2.1.0.json")
    (run,) = log["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert run["tool"]["driver"]["name"] and [r["id"] for r in rules] == list(LINTS)
    for rule in rules:
        assert rule["shortDescription"]["text"] and rule["help"]["text"]
        assert rule["defaultConfiguration"]["level"] in ("note", "warning", "error")
    assert len(run["results"]) == len(want)
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] in ("note", "warning", "error")
        assert result["message"]["text"]
        (loc,) = result["locations"]
        (logical,) = loc["logicalLocations"]
        assert (result["ruleId"], logical["fullyQualifiedName"]) in want
        assert all(isinstance(v, str) for v in result["partialFingerprints"].values())


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = _run(capsys, "doctor", "mysql://localhost/x")
    assert code == 2 and "not a PostgreSQL URL" in err
    code, _, err = _run(capsys, "doctor", "postgresql://localhost/x", "--lint", "nope")
    assert code == 2 and "unknown lint ids ['nope']" in err
    (tmp_path / "b.json").write_text("{}")
    code, _, err = _run(capsys, "doctor", "postgresql://localhost/x", "--baseline",
                        str(tmp_path / "b.json"))
    assert code == 2 and "baseline" in err
    code, _, err = _run(capsys, "doctor", "postgresql://nobody@127.0.0.1:1/x")
    assert code == 2 and "cannot read" in err
    code, _, err = _run(capsys, "diff", "postgresql://localhost/x", "--models", "nocolon")
    assert code == 2 and "module:attribute" in err


MODELS = '''
from sqlalchemy import BigInteger, Column, MetaData, Table, select
from pgpatterns.ddl import attach
from pgpatterns.views import view

metadata = MetaData()
items = Table("diff_items", metadata, Column("id", BigInteger, primary_key=True))
attach(metadata, view("diff_items_v", select(items.c.id), metadata=metadata))
'''


def test_diff_command(pg_schema: PgSchema, pg_database: Database, tmp_path: Path,
                      monkeypatch: pytest.MonkeyPatch,
                      capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "doctor_diff_models.py").write_text(MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    from doctor_diff_models import metadata  # type: ignore[import-not-found]

    with pg_schema.engine.begin() as conn:
        metadata.create_all(conn)
    args = ["diff", _url(pg_database), "--models", "doctor_diff_models:metadata",
            "--search-path", f"{pg_schema.name},public"]
    code, out, _ = _run(capsys, *args)
    assert (code, out.strip()) == (0, "no differences")
    with pg_schema.engine.begin() as conn:
        conn.execute(text("ALTER VIEW diff_items_v RESET (security_invoker)"))
    code, out, _ = _run(capsys, *args)
    assert code == 1 and "diff_items_v" in out and "security_invoker" in out


def test_console_script_and_module(pg_schema: PgSchema, pg_database: Database) -> None:
    script = Path(sys.executable).with_name("pgpatterns")
    assert script.is_file()
    result = subprocess.run([str(script), "doctor", _url(pg_database), "--schema",
                             pg_schema.name], capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout.strip()) == (0, "no findings"), result.stderr
    result = subprocess.run([sys.executable, "-m", "pgpatterns", "--version"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("pgpatterns ")
