import gzip
import json
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import select

from digestd.models import Paper
from digestd.store import count_papers, open_session

ROWS = [
    {
        "id": "2401.00001v1",
        "title": "A first  paper",
        "abstract": "About optics.",
        "authors": ["A. One", "B. Two"],
        "categories": ["physics.optics"],
        "published": "2024-01-02",
    },
    {
        "id": "2401.00002",
        "title": "A second paper",
        "abstract": "About lasers.",
        "authors": [],
        "categories": ["physics.optics", "quant-ph"],
        "published": "2024-01-03",
    },
]


def papers(engine: Engine) -> dict[str, Paper]:
    with open_session(engine) as session:
        return {paper.id: paper for paper in session.scalars(select(Paper))}


def test_the_real_corpus_imports_once(run, engine: Engine, corpus_path: Path) -> None:  # type: ignore[no-untyped-def]
    first = run("ingest", "--file", str(corpus_path))
    assert first.exit_code == 0, first.output
    assert "14370 papers read, 14370 new, 0 updated" in first.output
    second = run("ingest", "--file", str(corpus_path))
    assert "14370 papers read, 0 new, 0 updated, 14370 unchanged" in second.output
    with open_session(engine) as session:
        assert count_papers(session) == 14370
        paper = session.get(Paper, "2601.05286")
        assert paper is not None and paper.categories == ["quant-ph", "cs.AR", "cs.ET"]


def test_jsonl_json_csv_and_gzip_are_read_alike(run, engine: Engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    jsonl = tmp_path / "a.jsonl.gz"
    jsonl.write_bytes(gzip.compress("\n".join(json.dumps(r) for r in ROWS).encode()))
    as_json = tmp_path / "b.json"
    as_json.write_text(json.dumps(ROWS))
    as_csv = tmp_path / "c.csv"
    as_csv.write_text(
        "id,title,abstract,authors,categories,published\n"
        "2401.00001v2,A first paper (revised),About optics.,A. One; B. Two,physics.optics,2024-01-02\n"
        "2401.00003,Third,About masers.,C. Three,quant-ph physics.optics,2024-01-04\n"
    )
    assert "2 new" in run("ingest", "--file", str(jsonl)).output
    assert "0 new, 0 updated" in run("ingest", "--file", str(as_json)).output
    assert "1 new, 1 updated" in run("ingest", "--file", str(as_csv)).output
    stored = papers(engine)
    assert set(stored) == {"2401.00001", "2401.00002", "2401.00003"}
    revised = stored["2401.00001"]
    assert (revised.version, revised.title, revised.authors) == (2, "A first paper (revised)", ["A. One", "B. Two"])
    assert stored["2401.00003"].categories == ["quant-ph", "physics.optics"]
    assert len(revised.sources) == 3  # one paper, three files


def test_a_new_version_is_not_new_again(run, engine: Engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "v1.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n")
    run("ingest", "--file", str(path))
    first_seen = papers(engine)["2401.00001"].first_seen
    path.write_text(json.dumps({**ROWS[0], "id": "2401.00001v2", "abstract": "About optics, revised."}) + "\n")
    assert "0 new, 1 updated" in run("ingest", "--file", str(path)).output
    paper = papers(engine)["2401.00001"]
    assert paper.abstract == "About optics, revised." and paper.first_seen == first_seen


def test_a_file_with_bad_rows_imports_nothing_and_names_them(run, engine: Engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.jsonl"
    path.write_text(
        json.dumps(ROWS[0])
        + "\n"
        + "{not json\n"
        + json.dumps({**ROWS[1], "title": ""})
        + "\n"
        + json.dumps({**ROWS[1], "published": "yesterday"})
        + "\n"
    )
    result = run("ingest", "--file", str(path))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "3 bad row(s), nothing imported" in result.stderr
    assert "line 2: not valid JSON" in result.stderr and "line 3: title is missing" in result.stderr
    assert "line 4: published 'yesterday' is not an ISO date" in result.stderr
    assert papers(engine) == {}


def test_unreadable_files_get_one_line(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    missing = run("ingest", "--file", str(tmp_path / "missing.jsonl"))
    assert missing.exit_code == 1 and "cannot read" in missing.stderr
    latin = tmp_path / "latin.csv"
    latin.write_bytes("id,title,abstract\n1,Caf\xe9,x\n".encode("latin-1"))
    assert "is not UTF-8 text" in run("ingest", "--file", str(latin)).stderr
    assert "nothing to ingest" in run("ingest").stderr
