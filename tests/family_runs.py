"""Running one verify claim family at test size (imported by the family tests)."""
import fnmatch

from sandbox.verify.base import ROW_COLUMNS, VerifyConfig


def run_family(fam, out, pattern, rules):
    """Rows of ``fam.run`` for the claims matching ``pattern`` on ``rules``, with the interface
    checked: the standard columns, and only matching claims."""
    rows = fam.run(VerifyConfig(quick=True, out=out, only=pattern, extra={"rules": rules}))
    assert list(rows.columns) == list(ROW_COLUMNS)
    assert len(rows) and all(fnmatch.fnmatchcase(c, pattern) for c in rows["claim"])
    return rows


def assert_no_fail(rows):
    """Every row of a family's result table passed (the failing rows are shown otherwise)."""
    bad = rows[rows["verdict"] == "FAIL"]
    assert bad.empty, bad[["claim", "rule", "predicted", "measured", "note"]].to_string()
