"""Profiles are data: each YAML file loads, and every rule traces to its source.

A rule cites ``<file> §<section>`` and quotes the file verbatim. Source files live in
``../shared/seeds`` or ``../shared/reference`` (or under ``$GATECHECK_SHARED``). The
tests check that each quote is really in its file, that every numeric parameter is
stated in its rule's quote, and that KSB codes and texts match the catalogue.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from validators.profile import PROFILES_DIR, Profile, ProfileError, Role, RuleSpec, json_schema, load_file

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("GATECHECK_SHARED", ROOT.parent / "shared")).resolve()
SCHEMA = ROOT / "validators" / "schemas" / "profile.schema.json"
CHECKS_MD = ROOT / "validators" / "CHECKS.md"

PROFILE_FILES = sorted(PROFILES_DIR.glob("*.yaml"))

# Parameters that carry a published figure; each must be stated in its rule's quote.
NUMERIC_PARAMS = {
    "target",
    "tolerance_pct",
    "total_max_s",
    "per_clip_max_s",
    "min",
    "max",
    "typical",
    "minutes",
    "max_slides",
    "min_months_on_programme",
    "min_off_the_job_pct",
}
DEADLINE_SPANS = {"weeks", "days", "within_weeks", "within_days"}  # inside gateway `deadlines` entries
SECONDS_PARAMS = {"total_max_s", "per_clip_max_s"}  # may be stated in minutes ("ten minutes" = 600 s)

NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60,
}  # fmt: skip

ST0505_AM1_KSBS = ["K3", "S2", "S3", "B3", "K4", "K5", "S5", "S6", "B1", "K6", "S7",
                   "K15", "K16", "S9", "K17", "S10", "K22", "S14", "B2"]  # fmt: skip


# --- helpers -------------------------------------------------------------------------


def normalise(text: str) -> str:
    """Whitespace collapsed, markdown emphasis and typographic quotes removed."""
    text = text.replace("*", "")
    text = text.translate(str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u00a0": " "}))
    return " ".join(text.split())


def quote_fragments(quote: str) -> list[str]:
    """A quote may join verbatim passages with an ellipsis ("…"); each passage must match."""
    return [f for f in (normalise(p) for p in quote.split("…")) if f]


def source_file(name: str) -> Path:
    """``000_x.txt`` -> shared/seeds/000_x.txt; ``reference/y.md`` -> shared/reference/y.md."""
    if "/" in name:
        return SHARED / name
    for sub in ("seeds", "reference"):
        if (SHARED / sub / name).exists():
            return SHARED / sub / name
    return SHARED / "seeds" / name


def cited_file(rule: RuleSpec) -> str:
    """The file a rule's ``source`` names: its first token, before the ``§`` section."""
    return rule.source.split("§")[0].split(";")[0].strip().split()[0]


_TEXT_CACHE: dict[Path, str] = {}


def source_text(path: Path) -> str:
    if path not in _TEXT_CACHE:
        _TEXT_CACHE[path] = normalise(path.read_text(encoding="utf-8"))
    return _TEXT_CACHE[path]


def numbers_stated(quote: str) -> set[float]:
    """Every number a quote states, as digits (2,000 -> 2000) or as words (eight -> 8)."""
    flat = re.sub(r"(?<=\d),(?=\d{3}\b)", "", normalise(quote))
    found = {float(n) for n in re.findall(r"\d+(?:\.\d+)?", flat)}
    found |= {float(NUMBER_WORDS[w]) for w in re.findall(r"[a-z]+", flat.lower()) if w in NUMBER_WORDS}
    return found


def rules(profile: Profile) -> list[tuple[str, RuleSpec]]:
    out: list[tuple[str, RuleSpec]] = []
    for mid, method in profile.methods.items():
        out += [(f"{mid}.documents[{d.role}]", d.rule) for d in method.documents]
        out += [(f"{mid}.checks.{cid}", c.rule) for cid, c in method.checks.items()]
    return out


def numeric_params(params: dict[str, Any]) -> list[tuple[str, Any]]:
    out = [(k, v) for k, v in params.items() if k in NUMERIC_PARAMS]
    for i, deadline in enumerate(params.get("deadlines") or []):
        out += [(f"deadlines[{i}].{k}", v) for k, v in deadline.items() if k in DEADLINE_SPANS]
    return out


def deadline_problem(deadline: dict[str, Any], dates: set[str], roles: set[str]) -> str | None:
    """The shapes validators/checks/gateway.py reads: {role, before, weeks|days} or {role, after, within_*}."""
    if deadline.get("role") not in roles:
        return f"role {deadline.get('role')!r} is not one of the method's documents {sorted(roles)}"
    if ("before" in deadline) == ("after" in deadline):
        return "needs exactly one of 'before' or 'after'"
    anchor, spans = (
        ("before", {"weeks", "days"}) if "before" in deadline else ("after", {"within_weeks", "within_days"})
    )
    if deadline[anchor] not in dates:
        return f"{anchor} {deadline[anchor]!r} is not a meta date in CHECKS.md {sorted(dates)}"
    if len(spans & set(deadline)) != 1:
        return f"needs one of {sorted(spans)}"
    extra = set(deadline) - {"role", anchor, "date", *spans}
    if extra:
        return f"unknown keys {sorted(extra)}"
    if "date" in deadline and deadline["date"] not in dates:
        return f"date {deadline['date']!r} is not a meta date"
    return None


def require_shared() -> None:
    if not (SHARED / "seeds").is_dir():
        pytest.skip(f"shared seeds not present at {SHARED}")


def documented_params() -> dict[str, set[str]]:
    """Check id -> parameter names, from the table in validators/CHECKS.md."""
    table: dict[str, set[str]] = {}
    for line in CHECKS_MD.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        m = re.fullmatch(r"`(\w+)`", cells[0]) if len(cells) >= 3 else None
        if m:
            table[m.group(1)] = set(re.findall(r"`(\w+)`", cells[1]))
    return table


def meta_dates() -> set[str]:
    return set(re.findall(r"`(\w+_date)`", CHECKS_MD.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def profiles() -> dict[str, Profile]:
    return {path.name: load_file(path) for path in PROFILE_FILES}


# --- loading -------------------------------------------------------------------------


def test_profiles_exist() -> None:
    assert PROFILE_FILES, f"no profiles in {PROFILES_DIR}"


@pytest.mark.parametrize("path", PROFILE_FILES, ids=lambda p: p.name)
def test_profile_loads(path: Path) -> None:
    profile = load_file(path)  # validates the model and the check ids
    assert profile.id == path.stem, "file name and profile id should match"


def test_profile_ids_unique(profiles: dict[str, Profile]) -> None:
    ids = [p.id for p in profiles.values()]
    assert len(ids) == len(set(ids)), ids


# --- traceability --------------------------------------------------------------------


@pytest.mark.parametrize("path", PROFILE_FILES, ids=lambda p: p.name)
def test_sources_exist(path: Path) -> None:
    require_shared()
    profile = load_file(path)
    for src in profile.sources:
        assert src.file or src.url, f"source {src.id} names neither a file nor a url"
        if src.file:
            assert source_file(src.file).is_file(), f"source {src.id}: {src.file} not found under {SHARED}"


@pytest.mark.parametrize("path", PROFILE_FILES, ids=lambda p: p.name)
def test_rule_quotes_are_verbatim(path: Path) -> None:
    require_shared()
    profile = load_file(path)
    declared = {s.file for s in profile.sources if s.file}
    problems = []
    for where, rule in rules(profile):
        name = cited_file(rule)
        if name not in declared:
            problems.append(f"{where}: source {name!r} is not listed in the profile's sources")
            continue
        if not rule.quote:
            problems.append(f"{where}: no quote")
            continue
        text = source_text(source_file(name))
        problems += [f"{where}: not in {name}: {frag!r}" for frag in quote_fragments(rule.quote) if frag not in text]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", PROFILE_FILES, ids=lambda p: p.name)
def test_numeric_params_are_stated_in_quote(path: Path) -> None:
    profile = load_file(path)
    problems = []
    for mid, method in profile.methods.items():
        for cid, check in method.checks.items():
            stated = numbers_stated(check.rule.quote or "")
            for name, value in numeric_params(check.params):
                if isinstance(value, bool) or not isinstance(value, int | float):
                    problems.append(f"{mid}.{cid}.{name}: {value!r} is not a number")
                    continue
                accepted = {float(value)}
                if name in SECONDS_PARAMS:
                    accepted.add(value / 60)
                if not accepted & stated:
                    problems.append(f"{mid}.{cid}.{name}={value} is not stated in its quote: {check.rule.quote!r}")
    assert not problems, "\n".join(problems)


def test_numbers_stated_reads_word_forms() -> None:
    assert {2000.0, 10.0} <= numbers_stated("a word count of 2,000 words. A tolerance of 10% above")
    assert 10.0 in numbers_stated("a maximum total duration of ten minutes")
    assert 8.0 in numbers_stated("portfolios will contain eight discreet high-quality tasks")
    assert {10.0, 15.0} <= numbers_stated("portfolio of evidence (10-15 pieces)")
    assert 2500.0 in numbers_stated("must be 2500 words (+/- 10%)")


def test_quote_matching_normalises_markdown() -> None:
    assert quote_fragments("will not be accepted") == [normalise("will **not** be accepted")]
    assert quote_fragments("a. … b.") == ["a.", "b."]


@pytest.mark.parametrize("path", PROFILE_FILES, ids=lambda p: p.name)
def test_ksb_catalogue_is_verbatim(path: Path) -> None:
    require_shared()
    profile = load_file(path)
    texts = [source_text(source_file(s.file)) for s in profile.sources if s.file]
    missing = [code for code, text in profile.ksbs.items() if not any(normalise(text) in t for t in texts)]
    missing += [duty for duty in profile.duties if not any(normalise(duty) in t for t in texts)]
    assert not missing, f"KSB or duty text not found in the profile's source files: {missing}"


# --- KSBs ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", PROFILE_FILES, ids=lambda p: p.name)
def test_method_and_duty_ksbs_in_catalogue(path: Path) -> None:
    profile = load_file(path)
    for mid, method in profile.methods.items():
        unknown = [k for k in method.ksbs if k not in profile.ksbs]
        assert not unknown, f"method {mid} maps KSBs not in the catalogue: {unknown}"
        assert len(method.ksbs) == len(set(method.ksbs)), f"method {mid} lists a KSB twice"
    for duty, codes in profile.duties.items():
        unknown = [k for k in codes if k not in profile.ksbs]
        assert not unknown, f"duty {duty[:40]!r} maps KSBs not in the catalogue: {unknown}"


def test_st0505_am1_ksbs_exact() -> None:
    profile = load_file(PROFILES_DIR / "st0505-accelerate-people.yaml")
    assert profile.methods["AM1"].ksbs == ST0505_AM1_KSBS


def test_st0505_catalogue_and_methods_partition() -> None:
    profile = load_file(PROFILES_DIR / "st0505-accelerate-people.yaml")
    expected = [f"K{i}" for i in range(1, 24)] + [f"S{i}" for i in range(1, 16)] + [f"B{i}" for i in range(1, 7)]
    assert list(profile.ksbs) == expected
    am1, am2 = set(profile.methods["AM1"].ksbs), set(profile.methods["AM2"].ksbs)
    assert not am1 & am2, "the seed says assessment criteria do not appear in more than one method"
    assert am1 | am2 == set(expected)


def test_st0949_catalogue_and_duties() -> None:
    profile = load_file(PROFILES_DIR / "st0949-generic.yaml")
    expected = [f"K{i}" for i in range(1, 21)] + [f"S{i}" for i in range(1, 16)] + [f"B{i}" for i in range(1, 5)]
    assert list(profile.ksbs) == expected
    assert len(profile.duties) == 18
    assert {k for codes in profile.duties.values() for k in codes} == set(expected)


# --- parameters match CHECKS.md --------------------------------------------------------


@pytest.mark.parametrize("path", PROFILE_FILES, ids=lambda p: p.name)
def test_params_are_documented(path: Path) -> None:
    documented = documented_params()
    dates = meta_dates()
    roles = {r.value for r in Role}
    profile = load_file(path)
    problems = []
    for mid, method in profile.methods.items():
        method_roles = {d.role.value for d in method.documents}
        for cid, check in method.checks.items():
            where = f"{mid}.{cid}"
            unknown = set(check.params) - documented.get(cid, set())
            if unknown:
                problems.append(f"{where}: parameters not in CHECKS.md: {sorted(unknown)}")
            bad_roles = set(check.params.get("roles", [])) - roles
            if bad_roles:
                problems.append(f"{where}: unknown roles {sorted(bad_roles)}")
            for d in check.params.get("deadlines", []):
                if (why := deadline_problem(d, dates, method_roles)) is not None:
                    problems.append(f"{where}: bad deadline {d}: {why}")
            if cid == "evidence_count" and set(check.params) & {"min", "max"} == set() and check.severity != "warn":
                problems.append(f"{where}: a 'typically N' evidence count should be severity warn")
        if "required_documents" in method.checks and not any(d.required for d in method.documents):
            problems.append(f"{mid}: required_documents with no required document")
    assert not problems, "\n".join(problems)


# --- schema --------------------------------------------------------------------------


def test_schema_file_is_current() -> None:
    expected = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    assert SCHEMA.is_file(), f"{SCHEMA} missing: regenerate it from validators.profile.json_schema()"
    assert SCHEMA.read_text(encoding="utf-8") == expected, "profile.schema.json is stale: regenerate it"


# --- bad profiles fail to load ---------------------------------------------------------


def _minimal() -> dict[str, Any]:
    rule = {"text": "A rule.", "source": "000_eca4b4d044bee7e1.txt §AM1", "quote": "A rule."}
    return {
        "id": "tmp-profile",
        "standard": {"code": "ST9999", "title": "Test standard"},
        "epao": "Test EPAO",
        "sources": [{"id": "seed", "title": "Seed", "file": "000_eca4b4d044bee7e1.txt"}],
        "methods": {
            "AM1": {
                "name": "Project",
                "documents": [{"role": "report", "rule": rule}],
                "checks": {"word_count": {"rule": rule, "params": {"target": 2000}}},
            }
        },
    }


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "tmp-profile.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_minimal_profile_loads(tmp_path: Path) -> None:
    assert load_file(_write(tmp_path, _minimal())).id == "tmp-profile"


def test_unknown_check_id_fails(tmp_path: Path) -> None:
    data = _minimal()
    data["methods"]["AM1"]["checks"]["no_such_check"] = data["methods"]["AM1"]["checks"]["word_count"]
    with pytest.raises(ProfileError, match="no_such_check"):
        load_file(_write(tmp_path, data))


def test_missing_rule_source_fails(tmp_path: Path) -> None:
    data = _minimal()
    del data["methods"]["AM1"]["checks"]["word_count"]["rule"]["source"]
    with pytest.raises(ProfileError, match="source"):
        load_file(_write(tmp_path, data))


def test_unknown_method_ksb_fails(tmp_path: Path) -> None:
    data = _minimal()
    data["ksbs"] = {"K1": "Knowledge."}
    data["methods"]["AM1"]["ksbs"] = ["K1", "K99"]
    with pytest.raises(ProfileError, match="K99"):
        load_file(_write(tmp_path, data))


def test_invalid_yaml_fails(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("id: [unclosed\n", encoding="utf-8")
    with pytest.raises(ProfileError):
        load_file(path)
