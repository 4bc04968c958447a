"""Which URLs in sent messages get the recipient's signed parameter, and the signer's refusals; the CLI."""

from __future__ import annotations

from scrm.link_sign import LinkSigner
from scrm.link_stamp import Stamper

BASE = "https://welead.example.com"
CODES = {"https://shop.example.com/spring": "Abc2345"}


def _stamper() -> Stamper:
    return Stamper(LinkSigner("k"), BASE + "/")


def test_own_links_get_the_parameter_registered_targets_are_rewritten_others_are_left():
    s = _stamper()
    tok = s.token("o-1", d=7, b=2)
    assert s.url(f"{BASE}/l/Abc2345", tok, CODES) == f"{BASE}/l/Abc2345?wl={tok}"
    assert s.url(f"{BASE}/p/spring?x=1#top", tok, CODES) == f"{BASE}/p/spring?x=1&wl={tok}#top"
    assert s.url("https://shop.example.com/spring", tok, CODES) == f"{BASE}/l/Abc2345?wl={tok}"
    assert s.url("https://shop.example.com/spring?x=1", tok, CODES) == "https://shop.example.com/spring?x=1"
    assert s.url("https://elsewhere.example.com/", tok, CODES) == "https://elsewhere.example.com/"
    assert s.read(tok) == {"o": "o-1", "d": 7, "b": 2}


def test_texts_get_the_parameter_on_welead_links_only():
    s = _stamper()
    tok = s.token("o-1", d=1)
    text = f"See {BASE}/l/Abc2345 and {BASE}/p/fair?a=b, or https://other.example.com/l/x"
    assert s.text(text, tok) == (f"See {BASE}/l/Abc2345?wl={tok} and {BASE}/p/fair?a=b&wl={tok}, or "
                                 "https://other.example.com/l/x")  # fmt: skip


def test_the_signer_refuses_other_purposes_keys_and_shapes():
    signer = LinkSigner("k")
    token = signer.sign("share", {"k": "v1"})
    assert signer.load("share", token) == {"k": "v1"}
    assert signer.load("wl", token) is None  # a share token is no attribution
    assert LinkSigner("other").load("share", token) is None
    for bad in (None, "", "x", "a.b.c", "!!.??", token + "x", "e30." + token.split(".")[1], "x" * 700):
        assert signer.load("share", bad) is None
    listed = signer.sign("wl", {"o": "a"}).split(".")[0]
    assert _stamper().read(f"{listed}.{LinkSigner('k').sign('wl', {'o': 'b'}).split('.')[1]}") is None


def test_cli_adds_lists_and_prints_a_signed_url(runner):
    added = runner.invoke(args=["links", "add", "cli link", "https://shop.example.com/cli", "--tag", "t1"])
    assert added.exit_code == 0, added.output
    code = added.output.split()[0]
    assert "clicks 0" in runner.invoke(args=["links", "list"]).output
    refused = runner.invoke(args=["links", "add", "bad", "javascript:alert(1)"])
    assert refused.exit_code != 0 and "http(s)" in refused.output
    url = runner.invoke(args=["links", "url", code, "o-1"]).output.strip()
    assert f"/l/{code}?wl=" in url
