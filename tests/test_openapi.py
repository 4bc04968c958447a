"""The OpenAPI document tells the truth: schemathesis (the fuzzer that found issue 14) runs its default checks over
every operation of /api/v1/openapi.json against the app served over HTTP, with a seeded database, a fixed seed and
a bounded number of examples; and the document lists what a generated client needs (statuses, bodies, bounds).

Exceptions are configured per operation in SCHEMATHESIS_TOML with the reason; anything else that fails, fails here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import post

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = 8  # per operation and phase: ~45 operations stay well under a minute on a loaded machine

# A playbook or a segment's filter is valid only if it means something (rule references, stage names, score models
# that exist, regexes that compile): JSON Schema cannot say that, so a schema-valid body may rightly be refused.
SCHEMATHESIS_TOML = """
# Text holding NUL is refused everywhere with 400 (PostgreSQL cannot store it; tests/test_roles.py checks that).
generation.allow-x00 = false

[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]

[[operations]]
include-path-regex = "^/api/v1/(playbook|playbook/check|segments(/preview)?|broadcasts|messages|templates/.*/preview)$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "422"]

# A rep's manager must exist and not be one of its reports, and a working-hours slot must end after it starts and
# not overlap the next: meanings JSON Schema cannot state, so a schema-valid rep may rightly be refused (400).
[[operations]]
include-path-regex = "^/api/v1/reps(/[^/]+)?$"
include-method-regex = "^(POST|PATCH)$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409"]

# A team code's members and backup must be existing reps, listed once, and its welcome is bounded in bytes: meanings
# JSON Schema cannot state, so a schema-valid code may rightly be refused (400).
[[operations]]
include-path-regex = "^/api/v1/codes(/[^/]+)?$"
include-method-regex = "^(POST|PATCH)$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409"]

# An FAQ entry's id must be unique in the knowledge base (POST: not taken yet; PUT: the path's), and a file's ids
# unique among its entries: meanings JSON Schema cannot state, so a schema-valid entry or file may be refused (422).
[[operations]]
include-path-regex = "^/api/v1/faq(/entries/[^/]+)?$"
include-method-regex = "^(POST|PUT)$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422"]

# A report's name must be one of six, and its window real days, `from` not after `to`, at most 731 days apart: a
# schema-valid name or date may rightly be refused (400, the message says which).
[[operations]]
include-path-regex = "^/api/v1/reports/"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404"]
# A link's target must be an absolute http(s) URL with a host, and a page's button and form fields must make sense
# (an http(s) URL, field names): meanings JSON Schema cannot state, so a schema-valid link or page may rightly be
# refused (400); a request without a body is refused 422, as for every JSON body (docs/links.md).
[[operations]]
include-path-regex = "^/api/v1/(links|pages)$"
include-method-regex = "^POST$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "422"]
# A campaign must end after it starts, its tiers differ, their templates exist in the message library and an
# artwork be a real image under instance/: meanings JSON Schema cannot state, so a schema-valid body may be refused.
[[operations]]
include-path-regex = "^/api/v1/campaigns(/[^/]+(/artwork)?)?$"
include-method-regex = "^(POST|PATCH|PUT)$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409"]
# An event ends after it starts and its dates are ISO date-times; a booth reply is text or articles: meanings JSON
# Schema does not state, so a schema-valid event or booth may rightly be refused (400).
[[operations]]
include-path-regex = "^/api/v1/events(/[^/]+)?(/booths(/[^/]+)?)?$"
include-method-regex = "^(POST|PATCH)$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409"]

# `/segments/preview` is a literal route beside `/segments/{ref}`: Werkzeug's Allow lists the methods of both.
[[operations]]
include-path = "/api/v1/segments/preview"
checks.allow_header_conformance.enabled = false
"""


def seed(client, headers: dict[str, str]) -> None:
    """Something for the reads to find: a playbook, followers with timelines and scores, a saved segment."""
    assert (
        client.put("/api/v1/playbook", data=(ROOT / "playbooks" / "demo.yml").read_text(), headers=headers).status_code
        == 201
    )
    for i in range(3):
        post(client, "subscribe", openid=f"o-api-{i}", scene="booth:expo:A1")
        post(client, "text", openid=f"o-api-{i}", content="price?")
    body = {"name": "visitors", "filter": {"source": "booth:expo:*"}}
    assert client.post("/api/v1/segments", json=body, headers=headers).status_code == 201


def test_schemathesis_default_checks_pass(client, live, auth_headers, tmp_path):
    seed(client, auth_headers)
    config = tmp_path / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_TOML)
    command = [
        str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(config), "run",
        f"{live}/api/v1/openapi.json", "--header", f"Authorization: {auth_headers['Authorization']}",
        "--max-examples", str(EXAMPLES), "--seed", "14", "--workers", "1", "--no-color",
        "--generation-database", "none", "--request-timeout", "10", "--max-failures", "20",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-12000:] + done.stderr[-3000:]


def test_document_lists_statuses_bodies_and_bounds(client):
    spec = client.get("/api/v1/openapi.json").json
    paths = spec["paths"]
    put = paths["/api/v1/playbook"]["put"]
    assert {"200", "201", "400", "401", "403", "409", "413", "422"} <= set(put["responses"])
    assert "application/yaml" in put["requestBody"]["content"] and put["x-roles"] == ["admin", "marketer"]
    limit = next(p for p in paths["/api/v1/followers"]["get"]["parameters"] if p["name"] == "limit")
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 500)
    one = paths["/api/v1/followers/{openid}"]["get"]["responses"]
    assert one["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/FollowerOut"}
    assert set(one) == {"200", "400", "401", "404"}  # every role may read a follower (scoped): no 403
    assert "202" in paths["/api/v1/messages"]["post"]["responses"]
    assert "202" in paths["/api/v1/interactions/{interaction_id}/retry"]["post"]["responses"]
    retry = paths["/api/v1/interactions/{interaction_id}/retry"]["post"]["parameters"]
    assert next(p for p in retry if p["in"] == "path")["schema"]["maximum"] == 2**63 - 1
    follower = spec["components"]["schemas"]["FollowerOut"]
    assert {"openid", "subscribed", "tags", "score", "stage", "owner", "source"} <= set(follower["required"])
    assert spec["components"]["schemas"]["HTTPError"]["required"] == ["error", "message"]
