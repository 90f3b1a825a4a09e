"""Schemathesis over the API's own OpenAPI document, in-process, and a two-tenant BOLA sweep.

Why: the OpenAPI document is what gateway portals generate clients from, so every response must be one it
documents (status code, content type, body schema), and no input may produce a 5xx
(reliability-anchors.md (b) 40 (i)). Catalogue 35 asks for the same machinery with two tenants' credentials
swapped across every id-taking operation: tenant B must get exactly what an unknown id gets, 404.

Everything runs through the ASGI app (``schemathesis.openapi.from_asgi``): no server, no network. Runs are
bounded (``GATECHECK_API_FUZZ_EXAMPLES`` examples per operation, default 40) and reproducible (derandomized,
no example database).

``positive_data_acceptance`` is the one built-in check left out: it expects every schema-valid request to
succeed, but a schema cannot say "a standard that has a profile" or "bytes that are a real docx", so business
rejections (422 ``unknown_standard``, 415 on sniffed content) are correct answers it would flag.
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import negative_data_rejection, positive_data_acceptance

from service.app import create_app
from service.auth import Authenticator
from service.contracts import ApiRole, Status, submission_prefix
from tests.test_api import STANDARD, Env, make_env
from validators import api as checker
from validators.profile import all_profiles

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # catalogue marks are per test: 40 or 35

EXAMPLES = int(os.environ.get("GATECHECK_API_FUZZ_EXAMPLES", "40"))
SAMPLE = resources.files("gatecheck") / "samples" / "sample_project_report.docx"
EXCLUDED = [positive_data_acceptance]
_FUZZ_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                          suppress_health_check=list(HealthCheck))
_PATH_PARAM = re.compile(r"\{(\w+)\}")


@dataclass
class Api:
    """The app over real SQLite + local storage, two tenants, and each tenant's own submissions."""

    env: Env
    schema: Any  # schemathesis BaseSchema
    submissions: dict[str, dict[str, str]] = field(default_factory=dict)  # tenant -> {"queued"|"done": id}
    uploads: dict[str, dict[str, str]] = field(default_factory=dict)  # tenant -> {"id", "token"}

    def headers(self, tenant: str = "acme", role: ApiRole = ApiRole.ADMIN) -> dict[str, str]:
        return self.env.headers(tenant, role)


def _sample_bytes() -> bytes:
    return SAMPLE.read_bytes()


def _report(tmp: Path) -> bytes:
    """A real report (gatecheck.report/1) of the sample docx, as the worker would store it."""
    path = tmp / "sample_project_report.docx"
    path.write_bytes(_sample_bytes())
    profile = all_profiles()[STANDARD["standard"]]
    return json.dumps(checker.check_paths([path], profile, STANDARD["method"]).to_dict()).encode()


def _portfolio() -> bytes:
    """The sample docx inside a zip: schemathesis names a multipart file after its sniffed type (``files.zip``),
    and the API rightly refuses a docx named ``.zip``, so the stateful submits send a real zip portfolio."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("portfolio/report.docx", _sample_bytes())
    return buf.getvalue()


def _submit(env: Env, tenant: str) -> str:
    r = env.post([("report.docx", _sample_bytes())], tenant=tenant)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def _finish(env: Env, tenant: str, sid: str, report: bytes) -> None:
    key = submission_prefix(tenant, sid) + "report.json"
    env.storage.put(key, io.BytesIO(report), len(report), "application/json")
    assert env.state.transition(sid, frozenset({Status.QUEUED}), Status.DONE, report_key=key, outcome="attention",
                                finished_at=1.7e9)


def _upload(env: Env, tenant: str) -> dict[str, str]:
    r = env.client.post("/v1/uploads", headers=env.headers(tenant), json={"files": [{"name": "clip.mp4", "size": 4}]})
    assert r.status_code == 201, r.text
    ticket = r.json()["uploads"][0]
    token = re.search(r"[?&]token=([^&]+)", ticket["url"])
    assert token, ticket["url"]
    return {"id": ticket["upload_id"], "token": token.group(1)}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """Rate limits lifted (thousands of requests on one key); each tenant gets a queued and a done submission."""
    tmp = tmp_path_factory.mktemp("api-fuzz")
    env = make_env(tmp)
    # ignored_auth re-sends requests without a key: the per-IP failed-auth bucket would soon answer 429 to all.
    lifted = Authenticator(env.state, 1_000_000, failures_per_minute=1_000_000)
    env.client = TestClient(create_app(env.settings, env.state, env.storage, env.enqueued.append,
                                       queue_depth=lambda: 7, authenticator=lifted))
    report = _report(tmp)
    # The admin key as schemathesis' own auth (not a header override), so its negative cases that drop or
    # garble Authorization are known to be negative, and ignored_auth can re-send them without it.
    key = env.keys["acme", ApiRole.ADMIN]
    config = schemathesis.Config.from_dict({"auth": {"openapi": {"HTTPBearer": {"bearer": key}}}})
    out = Api(env, schemathesis.openapi.from_asgi("/openapi.json", env.client.app, config=config))
    for tenant in ("acme", "other"):
        queued, done = _submit(env, tenant), _submit(env, tenant)
        _finish(env, tenant, done, report)
        out.submissions[tenant] = {"queued": queued, "done": done}
        out.uploads[tenant] = _upload(env, tenant)
    yield out
    env.state.close()


def _operation_labels() -> list[str]:
    """"METHOD /path" of every documented operation, read from a throwaway app at collection time.

    Why not ``schemathesis.pytest.from_fixture`` + ``@schema.parametrize()``: its lazy loader sets
    ``node._nodeid``, which pytest 9 no longer has (AttributeError), so operations are parametrized here.
    """
    with tempfile.TemporaryDirectory(prefix="gc-api-doc-") as tmp:
        env = make_env(Path(tmp))
        try:
            doc = env.client.app.openapi()
        finally:
            env.state.close()
    methods = {"get", "put", "post", "delete", "patch", "head", "options"}
    return sorted(f"{m.upper()} {path}" for path, item in doc["paths"].items() for m in item if m in methods)


def _operation(api: Api, label: str) -> Any:
    method, path = label.split(" ", 1)
    return api.schema[path][method]


@pytest.mark.catalogue(40)
@pytest.mark.parametrize("label", _operation_labels())
def test_every_operation_conforms_to_the_openapi_document(label: str, api: Api) -> None:
    """Generated requests, valid and invalid: never a 5xx; status, content type, headers and body as documented."""
    op = _operation(api, label)
    statuses: Counter[int] = Counter()
    cases = st.one_of(op.as_strategy(), op.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE))

    @_FUZZ_SETTINGS
    @given(case=cases)
    def run(case: schemathesis.Case) -> None:
        response = case.call_and_validate(excluded_checks=EXCLUDED)
        statuses[response.status_code] += 1

    run()
    assert statuses and max(statuses) < 500, statuses


@pytest.mark.catalogue(40)
@pytest.mark.parametrize("query", [{}, {"format": "json"}, {"format": "html"}])
def test_a_real_report_conforms_to_the_report_schema(query: dict[str, str], api: Api) -> None:
    """Generated ids never hit a finished submission, so the documented 200 (gatecheck.report/1 or HTML) is
    validated here on a real report of the sample docx."""
    op = _operation(api, "GET /v1/submissions/{submission_id}/report")
    case = op.Case(path_parameters={"submission_id": api.submissions["acme"]["done"]}, query=query)
    response = case.call_and_validate(headers=api.headers(), excluded_checks=EXCLUDED)  # built cases carry no auth
    assert response.status_code == 200
    kind = "text/html" if query.get("format") == "html" else "application/json"
    assert response.headers["content-type"][0].startswith(kind)


@pytest.mark.catalogue(40)
def test_stateful_workflows_conform(api: Api) -> None:
    """Linked sequences (submit -> status -> report -> delete) via links schemathesis infers from the schema.

    Generated multipart bodies are never real documents, so submits carry the sample portfolio: the ids that
    flow down the links are then real submissions, and the follow-up calls reach real records.
    """
    machine = api.schema.as_state_machine()
    headers = api.headers()
    portfolio = _portfolio()
    seen: Counter[str] = Counter()
    replaced: list[schemathesis.Case] = []  # kept alive, so identity checks cannot hit a recycled id

    class Workflow(machine):  # type: ignore[misc, valid-type]
        def before_call(self, case: schemathesis.Case) -> None:
            positive = case.meta is None or not case.meta.generation.mode.is_negative
            if case.operation.label == "POST /v1/submissions" and positive:  # negative cases keep their bad body
                case.body = {"files": [portfolio], **STANDARD}
                replaced.append(case)

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"headers": headers}

        def validate_response(self, response: schemathesis.Response, case: schemathesis.Case,
                              additional_checks: Any = None, **kwargs: Any) -> None:
            seen[f"{case.operation.label} {response.status_code}"] += 1
            # schemathesis cannot validate binary parts, so it relabels a case whose body was replaced "negative"
            # and would flag its 202: negative_data_rejection does not apply to the replaced (valid) bodies.
            excluded = [*EXCLUDED, negative_data_rejection] if any(c is case for c in replaced) else EXCLUDED
            case.validate_response(response, excluded_checks=excluded, headers=headers, transport_kwargs=kwargs)

    Workflow.run(settings=settings(max_examples=max(5, EXAMPLES // 2), stateful_step_count=6, deadline=None,
                                   derandomize=True, database=None, suppress_health_check=list(HealthCheck)))
    assert seen["POST /v1/submissions 202"] > 0, seen
    linked = [k for k in seen if k.startswith(("GET /v1/submissions/{submission_id} 200",
                                               "GET /v1/submissions/{submission_id}/report 409",
                                               "DELETE /v1/submissions/{submission_id} 204"))]
    assert linked, f"no step followed a link to a real submission: {seen}"


# --- catalogue 35: tenant swap -----------------------------------------------------------------------------------


def _id_operations(api: Api) -> list[Any]:
    ops = [result.ok() for result in api.schema.get_all_operations()]
    return [op for op in ops if _PATH_PARAM.search(op.path)]


def _swap_call(api: Api, op: Any, case: schemathesis.Case, which: str, role: ApiRole) -> int:
    """One generated request to ``op`` carrying tenant A's id and tenant B's credential; returns the status."""
    if _PATH_PARAM.findall(op.path) == ["upload_id"]:
        case.path_parameters = {"upload_id": api.uploads["acme"]["id"]}
        case.query = {"token": api.uploads["other"]["token"]}
        r = case.call()
        assert (r.status_code, r.json()["error"]["code"]) == (403, "invalid_upload_token"), r.text
        return int(r.status_code)
    case.path_parameters = {"submission_id": api.submissions["acme"][which]}
    r = case.call(headers=api.headers("other", role))
    # DELETE is admin-only: other roles are refused for their role (403) before any lookup, whatever the id.
    allowed = op.method.upper() != "DELETE" or role is ApiRole.ADMIN
    expected = (404, "not_found") if allowed else (403, "forbidden")
    if r.status_code == 422:  # a generated query parameter was invalid: rejected before any lookup
        assert r.json()["error"]["code"] == "invalid_request", r.text
    else:
        assert (r.status_code, r.json()["error"]["code"]) == expected, (op.label, role, r.text)
    return int(r.status_code)


def _swap_sweep(api: Api, op: Any) -> Counter[str]:
    """``EXAMPLES`` schemathesis-generated requests to ``op`` (queries, headers), ids swapped; statuses counted."""
    seen: Counter[str] = Counter()
    roles = [ApiRole.ADMIN, ApiRole.SUBMITTER, ApiRole.READER]

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy(), which=st.sampled_from(sorted(api.submissions["acme"])), role=st.sampled_from(roles))
    def swap(case: schemathesis.Case, which: str, role: ApiRole) -> None:
        seen[f"{op.label} {_swap_call(api, op, case, which, role)}"] += 1

    swap()
    return seen


@pytest.mark.catalogue(35)
def test_tenant_b_gets_404_on_every_id_taking_operation_of_tenant_a(api: Api) -> None:
    """Every operation with an id in its path, generated by schemathesis, with A's ids and B's key -> 404.

    B's answer must be the one an unknown id gets (same code), so B cannot even learn an id exists.
    ``PUT /v1/uploads/{upload_id}`` takes no API key: its permission is the URL token, which names one upload,
    so B's token on A's upload is refused (403 ``invalid_upload_token``) exactly as on any other id.
    """
    a_ids = api.submissions["acme"]
    covered: Counter[str] = Counter()
    ops = _id_operations(api)
    assert {op.label for op in ops} >= {"GET /v1/submissions/{submission_id}",
                                         "GET /v1/submissions/{submission_id}/report",
                                         "DELETE /v1/submissions/{submission_id}", "PUT /v1/uploads/{upload_id}"}
    for op in ops:
        covered.update(_swap_sweep(api, op))
    assert all(any(k.startswith(op.label + " 40") for k in covered) for op in ops), covered
    # A still sees its own submissions: the 404s above were the tenant check, not damage.
    for sid in a_ids.values():
        assert api.env.client.get(f"/v1/submissions/{sid}", headers=api.headers("acme")).status_code == 200


@pytest.mark.catalogue(35)
def test_tenant_b_cannot_use_tenant_a_ids_in_bodies_or_cursors(api: Api) -> None:
    """Ids also travel in a submission's ``uploads`` field and in list cursors: no cross-tenant effect either."""
    a_upload = api.uploads["acme"]["id"]
    made_up = "f" * len(a_upload)
    answers = []
    for upload_id in (a_upload, made_up):
        fields = {**STANDARD, "uploads": json.dumps([upload_id])}  # (None, value): multipart fields, no file
        r = api.env.client.post("/v1/submissions", headers=api.headers("other"),
                                files=[(k, (None, v)) for k, v in fields.items()])
        answers.append((r.status_code, r.json()["error"]["code"]))
    assert answers[0] == answers[1] and answers[0][0] in (404, 422), answers
    page = api.env.client.get("/v1/submissions", params={"limit": 1}, headers=api.headers("acme")).json()
    assert page["next_cursor"], page
    r = api.env.client.get("/v1/submissions", params={"limit": 50, "cursor": page["next_cursor"]},
                           headers=api.headers("other"))
    a_ids = set(api.submissions["acme"].values())
    assert r.status_code in (200, 400), r.text
    assert r.status_code == 400 or not {i["id"] for i in r.json()["items"]} & a_ids

