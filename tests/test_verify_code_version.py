"""``verify`` resumes only results of the same code: the code fingerprint
(:mod:`sandbox.verify.code_version`), its record in ``verify_state.json`` and ``report.md``, and
the rerun of families saved by other code (their stale rows never mix with new ones)."""
import json
import types

import pandas as pd
import pytest

import sandbox
from sandbox.verify import code_version
from sandbox.verify.base import ROW_COLUMNS, VerifyConfig
from sandbox.verify.code_version import CodeFingerprint, source_sha256
from sandbox.verify.rows import make_row, progress, rows_frame
from sandbox.verify.runner import run_verify

OLD = CodeFingerprint("0.0.9", "a" * 64)
NEW = CodeFingerprint("0.1.0", "b" * 64)


def _family(name, behaviour, calls):
    """A stand-in family of two claims; ``behaviour["verdict"]`` is what the "code" measures now
    (FAIL: measured 2.0, PASS: measured 1.0 against predicted 1.0), so stale rows are told apart
    from fresh ones."""
    mod = types.ModuleType(f"fake_{name}")
    mod.TITLE = f"Fake family {name}"
    mod.CLAIMS = (f"{name}.a", f"{name}.b")
    mod.plan = lambda cfg: [(c, "sgd") for c in mod.CLAIMS]

    def run(cfg):
        calls.append(name)
        measured = {"PASS": 1.0, "FAIL": 2.0}[behaviour["verdict"]]
        return rows_frame([make_row(name, c, "sgd", "x=1", 1.0, measured, 0.1)
                           for c in progress(cfg, list(mod.CLAIMS))])

    mod.run = run
    return mod


def _run(tmp_path, fams, **kw):
    return run_verify(VerifyConfig(quick=True, out=tmp_path), families=fams, show_progress=False,
                      **kw)


def _state(tmp_path):
    return json.loads((tmp_path / "verify_state.json").read_text())


def _csv(tmp_path):
    return pd.read_csv(tmp_path / "verify.csv", keep_default_na=False, na_values=[""])


@pytest.fixture
def fingerprint(monkeypatch):
    """Set the code fingerprint the runner sees: ``fingerprint(OLD)``."""
    def use(fp):
        monkeypatch.setattr(code_version, "code_fingerprint", lambda: fp)
    return use


# --- the fingerprint itself ----------------------------------------------------------------------
def test_fingerprint_names_the_version_and_is_computed_once():
    fp = code_version.code_fingerprint()
    assert fp.version == sandbox.__version__
    assert len(fp.source_sha256) == 64 and int(fp.source_sha256, 16) >= 0
    assert fp.id == f"{sandbox.__version__}+{fp.source_sha256[:12]}"
    assert fp.describe() == f"sandbox {sandbox.__version__}, source sha256 {fp.source_sha256[:12]}"
    assert code_version.code_fingerprint() is fp  # cached: not recomputed per call
    rels = [rel for rel, _ in code_version.source_files()]
    assert rels == sorted(rels)
    assert "sandbox/verify/runner.py" in rels and any(r.startswith("theory/") for r in rels)


def test_source_hash_follows_contents_and_paths_but_not_caches(tmp_path, monkeypatch):
    pkg = tmp_path / "fp_probe_pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "a.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    base = source_sha256(("fp_probe_pkg",))
    assert source_sha256(("fp_probe_pkg",)) == base  # deterministic
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "x.py").write_text("junk")
    (pkg / "notes.txt").write_text("not source")
    assert source_sha256(("fp_probe_pkg",)) == base
    (pkg / "sub" / "a.py").write_text("X = 2\n")
    changed = source_sha256(("fp_probe_pkg",))
    assert changed != base
    (pkg / "sub" / "a.py").rename(pkg / "sub" / "b.py")  # same bytes, other path
    assert source_sha256(("fp_probe_pkg",)) not in (base, changed)


# --- resume under the runner ---------------------------------------------------------------------
def test_same_code_resumes_without_calling_the_family_again(tmp_path, fingerprint, capsys):
    fingerprint(NEW)
    calls, behaviour = [], {"verdict": "PASS"}
    fams = {"one": _family("one", behaviour, calls)}
    _run(tmp_path, fams)
    state = _state(tmp_path)
    assert state["code"] == {"version": "0.1.0", "source_sha256": "b" * 64, "id": NEW.id}
    assert state["family_code"] == {"one": NEW.id}
    behaviour["verdict"] = "FAIL"  # would show if the family ran again
    table, status = _run(tmp_path, fams)
    assert calls == ["one"]
    assert status == 0 and list(table["verdict"]) == ["PASS", "PASS"]
    assert "code changed" not in capsys.readouterr().err
    assert "resumed from saved results: one" in (tmp_path / "report.md").read_text()
    _run(tmp_path, fams, force=True)  # --force still reruns under the same code
    assert calls == ["one", "one"]


def test_changed_code_reruns_and_drops_the_stale_rows(tmp_path, fingerprint, capsys):
    calls, behaviour = [], {"verdict": "FAIL"}
    fams = {"one": _family("one", behaviour, calls), "two": _family("two", behaviour, calls)}
    fingerprint(OLD)
    _, status = _run(tmp_path, fams)
    assert status == 1 and set(_csv(tmp_path)["verdict"]) == {"FAIL"}
    capsys.readouterr()
    fingerprint(NEW)
    behaviour["verdict"] = "PASS"
    table, status = _run(tmp_path, fams)
    assert calls == ["one", "two", "one", "two"]
    err = [line for line in capsys.readouterr().err.splitlines() if "code changed" in line]
    assert len(err) == 1 and "rerunning one, two" in err[0] and NEW.describe() in err[0]
    saved = _csv(tmp_path)
    assert status == 0 and len(saved) == 4 and set(saved["verdict"]) == {"PASS"}
    assert list(saved.columns) == list(ROW_COLUMNS) and len(table) == 4
    assert _state(tmp_path)["family_code"] == {"one": NEW.id, "two": NEW.id}
    report = (tmp_path / "report.md").read_text()
    assert "rerun because the code changed: one, two" in report and "resumed" not in report


def test_only_the_families_saved_by_other_code_are_rerun(tmp_path, fingerprint, capsys):
    calls, behaviour = [], {"verdict": "FAIL"}
    fams = {"one": _family("one", behaviour, calls), "two": _family("two", behaviour, calls)}
    fingerprint(NEW)
    _run(tmp_path, fams)
    state = _state(tmp_path)
    state["family_code"]["two"] = OLD.id  # family two's rows came from other code
    (tmp_path / "verify_state.json").write_text(json.dumps(state))
    capsys.readouterr()
    behaviour["verdict"] = "PASS"
    _run(tmp_path, fams)
    assert calls == ["one", "two", "two"]
    assert "rerunning two:" in capsys.readouterr().err
    saved = _csv(tmp_path)
    verdicts = saved.groupby("family")["verdict"].apply(set).to_dict()
    assert verdicts == {"one": {"FAIL"}, "two": {"PASS"}} and len(saved) == 4


def test_old_state_without_fingerprint_is_rerun(tmp_path, fingerprint):
    calls, behaviour = [], {"verdict": "FAIL"}
    fams = {"one": _family("one", behaviour, calls)}
    fingerprint(NEW)
    _run(tmp_path, fams)
    state = _state(tmp_path)
    old_format = {"options": state["options"], "done": state["done"]}  # as older code wrote it
    (tmp_path / "verify_state.json").write_text(json.dumps(old_format))
    behaviour["verdict"] = "PASS"
    _, status = _run(tmp_path, fams)
    assert calls == ["one", "one"]
    saved = _csv(tmp_path)
    assert status == 0 and len(saved) == 2 and set(saved["verdict"]) == {"PASS"}
    assert _state(tmp_path)["family_code"] == {"one": NEW.id}


def test_stale_rows_leave_the_csv_even_when_the_rerun_crashes(tmp_path, fingerprint):
    calls, behaviour = [], {"verdict": "FAIL"}
    fingerprint(OLD)
    _run(tmp_path, {"one": _family("one", behaviour, calls)})
    broken = _family("one", behaviour, calls)
    broken.run = lambda cfg: (_ for _ in ()).throw(RuntimeError("boom"))
    fingerprint(NEW)
    with pytest.raises(RuntimeError, match="boom"):
        _run(tmp_path, {"one": broken})
    assert len(_csv(tmp_path)) == 0 and _state(tmp_path)["done"] == []


def test_stale_rows_of_a_family_not_selected_now_are_dropped(tmp_path, fingerprint, capsys):
    calls, behaviour = [], {"verdict": "FAIL"}
    one, two = _family("one", behaviour, calls), _family("two", behaviour, calls)
    fingerprint(OLD)
    _run(tmp_path, {"one": one, "two": two})
    capsys.readouterr()
    fingerprint(NEW)
    behaviour["verdict"] = "PASS"
    _run(tmp_path, {"one": one})
    assert "dropped the saved rows of two" in capsys.readouterr().err
    assert set(_csv(tmp_path)["family"]) == {"one"} and _state(tmp_path)["done"] == ["one"]


def test_report_names_the_code(tmp_path, fingerprint):
    calls = []
    fams = {"one": _family("one", {"verdict": "PASS"}, calls)}
    fingerprint(NEW)
    _run(tmp_path, fams)
    report = (tmp_path / "report.md").read_text()
    assert "- code: sandbox 0.1.0, source sha256 bbbbbbbbbbbb" in report.splitlines()
    fingerprint(OLD)
    _run(tmp_path, fams)
    assert "- code: sandbox 0.0.9, source sha256 aaaaaaaaaaaa" in \
        (tmp_path / "report.md").read_text().splitlines()
