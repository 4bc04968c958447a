"""`/` says where things are; `/api/v1/docs` works offline (assets served locally) with operations grouped by tag."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

ATTRS = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


def test_root_lists_the_pages_instead_of_a_404(client):
    r = client.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert r.status_code == 200 and r.mimetype == "text/html"
    page = r.get_data(as_text=True)
    for path in ("/api/v1/docs", "/api/v1/openapi.json", "/healthz", "/metrics", "/wechat/callback"):
        assert f'href="{path}"' in page, path
    r = client.get("/", headers={"Accept": "application/json"})
    assert r.status_code == 200 and r.json["links"]["API docs"] == "/api/v1/docs"


def test_root_lists_only_pages_that_answer(client):
    for path in client.get("/", headers={"Accept": "application/json"}).json["links"].values():
        if "callback" not in path:  # callbacks need a signature
            with client.get(path) as r:
                assert r.status_code != 404, path


def test_docs_page_references_no_external_host(client):
    r = client.get("/api/v1/docs")
    assert r.status_code == 200
    page = r.get_data(as_text=True)
    refs = ATTRS.findall(page)
    assert len(refs) >= 3, refs  # a stylesheet, two scripts (and the favicon)
    for ref in refs:
        parts = urlsplit(ref)
        assert not parts.scheme and not parts.netloc, ref
    assert "cdn." not in page
    for ref in refs:
        with client.get(ref) as asset:
            assert asset.status_code == 200, ref
            assert len(asset.get_data()) > 100, ref


def test_operations_are_grouped_by_tag(client):
    spec = client.get("/api/v1/openapi.json").json
    names = [t["name"] for t in spec["tags"]]
    assert {"Followers", "Playbook", "Segments", "Broadcasts"} <= set(names), names
    assert "Api" not in names
    tags = {p: {tuple(op["tags"]) for op in ops.values()} for p, ops in spec["paths"].items()}
    assert tags["/api/v1/playbook"] == {("Playbook",)}
    assert tags["/api/v1/followers/{openid}/score"] == {("Followers",)}
    assert all(len(t) == 1 for t in tags.values()), tags
