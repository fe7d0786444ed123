"""The command line as a user drives it: emit, duplicates, conflicts, status, checksum, catalogue."""

from __future__ import annotations

import orjson

from tests.factories import envelope, page
from tests.helpers import cli, wait_until


def lines(*envelopes: dict) -> bytes:
    return b"".join(orjson.dumps(e) + b"\n" for e in envelopes)


def test_emit_drain_status_checksum(data_dir) -> None:
    out = cli("emit", "-", input=lines(page("a", id="e1"), page("b", id="e2")), check=True)
    assert orjson.loads(out.stdout) == {"appended": 2, "duplicates": 0, "last_position": 2}
    status = orjson.loads(cli("status", "--json", check=True).stdout)
    cms = status["projections"]["cms"]
    assert status["head"] == 2 and (cms["checkpoint"], cms["lag"]) == (0, 2) and cms["lag_seconds"] > 0
    cli("drain", check=True)
    status = orjson.loads(cli("status", "--json", check=True).stdout)
    assert status["projections"]["cms"] == {"checkpoint": 2, "lag": 0, "lag_seconds": 0.0}
    first, second = cli("checksum", check=True).stdout, cli("checksum", check=True).stdout
    assert first == second and b"total" in first
    again = cli("emit", "-", input=lines(page("a", id="e1"), page("b", id="e2")), check=True)
    assert orjson.loads(again.stdout) == {"appended": 0, "duplicates": 2, "last_position": 2}


def test_emit_from_a_file_of_generated_events(data_dir, tmp_path) -> None:
    generated = cli("sample", "--events", "500", check=True).stdout
    path = tmp_path / "events.jsonl"
    path.write_bytes(generated)
    assert orjson.loads(cli("emit", str(path), check=True).stdout)["appended"] == 500
    cli("drain", check=True)
    assert orjson.loads(cli("status", "--json", check=True).stdout)["projections"]["cms"]["lag"] == 0


def test_invalid_input_exits_non_zero_with_one_line_and_writes_nothing(data_dir) -> None:
    bad = cli("emit", "-", input=lines(page("a"), envelope("PageCreated", {"id": "b", "site_id": "s"})))
    assert bad.returncode == 2
    assert bad.stderr.decode().strip().count("\n") == 0
    assert "line 2" in bad.stderr.decode() and "data.title" in bad.stderr.decode()
    unknown = cli("emit", "-", input=lines(envelope("Nope", {})))
    assert unknown.returncode == 2 and "unknown event type 'Nope'" in unknown.stderr.decode()
    broken = cli("emit", "-", input=b'{"type": "PageCreated"\n')
    assert broken.returncode == 2 and "not valid JSON" in broken.stderr.decode()
    assert orjson.loads(cli("status", "--json", check=True).stdout)["head"] == 0


def test_version_conflict_exits_3_and_writes_nothing(data_dir) -> None:
    cli("emit", "-", input=lines(page("a")), check=True)
    conflict = cli("emit", "-", input=lines(page("b"), envelope("PageUpdated", {"id": "a", "title": "x"},
                                                                 expected_version=0)))
    assert conflict.returncode == 3
    assert "line 2" in conflict.stderr.decode() and "version conflict on stream 'page-a'" in conflict.stderr.decode()
    assert orjson.loads(cli("status", "--json", check=True).stdout)["head"] == 1


def test_catalogue_lists_every_event_type(data_dir) -> None:
    from pipeline.events import CATALOGUE

    info = orjson.loads(cli("events", "catalogue", "--json", check=True).stdout)
    assert set(info) == set(CATALOGUE)
    assert info["PageCreated"]["fields"]["title"]["required"] is True
    assert "metadata" in info["PageCreated"]["fields"]


def test_the_readme_documents_every_cms_event_type() -> None:
    from pipeline.events import CATALOGUE
    from tests.helpers import REPO

    readme = (REPO / "README.md").read_text()
    cms = [name for name, model in CATALOGUE.items() if model.__module__ == "pipeline.cms.events"]
    assert [name for name in cms if f"| `{name}` |" not in readme] == []


def test_drain_progress_reports_what_the_long_jobs_record(chronicle) -> None:
    """The watcher behind ``chronicle drain``'s status line counts outcome events recorded after it
    started (here by hand, as an embedding job would) and the projections' progress."""
    from pipeline.drain_progress import DrainProgress

    chronicle.emit("TeamCreated", {"id": "t", "name": "Team"})
    lines: list[str] = []
    progress = DrainProgress(chronicle.store, chronicle.settings.projection_db_path, lines.append)
    chronicle.emit_many([{"type": "EmbeddingsComputed", "data": {"model": "m", "dimension": 4, "items": [
        {"kind": "page", "id": f"p{i}", "content_hash": "a" * 64} for i in range(3)]}}])
    assert progress.poll().startswith("draining… projected 0/2 · embedded 3 (")
    chronicle.project()
    with progress:  # the thread polls on its own
        wait_until(lambda: lines and "projected 2/2" in lines[-1], timeout=10, what="a progress line")
    assert "embedded 3" in lines[-1]
