"""`flask wechat ...`: protocol tools. `simulate` sends a signed (encrypted when configured) callback to a running
WeLead, `verify` checks its URL verification, `menu check|push` the OA custom menu.

The protocol code is in wechat/ (simulate, menu, api); these commands only wire it to the app's settings and Redis.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import click
import requests
from flask.cli import AppGroup
from wechatpy.exceptions import WeChatException

from foundation.services import services
from wechat.api import OAClient
from wechat.errors import WeChatError
from wechat.menu import Menu, MenuError, read_menu
from wechat.simulate import (
    DEFAULT_OPENID,
    KINDS,
    Channel,
    build_callback,
    build_verification,
    callback_path,
    is_wecom,
    read_reply,
)

wechat_cli = AppGroup("wechat", help="WeChat protocol tools: simulated callbacks, URL verification.")


def _server(url: str | None) -> str:
    return (url or services().settings.public_url).rstrip("/")


def _call(method: str, url: str, timeout: float, **kwargs: Any) -> requests.Response:
    try:
        return requests.request(method, url, timeout=timeout, **kwargs)
    except requests.ConnectionError as exc:
        raise click.ClickException(
            f"{method} {url} failed: nothing answers there; is `make run` running? (or pass --url)\n  ({exc})"
        ) from exc
    except requests.RequestException as exc:
        raise click.ClickException(f"{method} {url} failed: {exc}") from exc


def _show_answer(response: requests.Response, channel: Channel) -> None:
    click.echo(f"<- {response.status_code} {response.reason}")
    if not response.content:
        return
    try:
        click.echo(read_reply(response.content, services().settings, channel))
    except (WeChatException, KeyError, ValueError) as exc:  # bad signature, wrong AppID, malformed envelope
        click.echo(response.text)
        raise click.ClickException(f"the reply does not decrypt: {exc!r}") from exc


@wechat_cli.command("simulate")
@click.argument("kind", type=click.Choice(KINDS))
@click.option("--openid", help="Follower's openid (OA kinds).")
@click.option("--create-time", type=int, help="CreateTime (default: now). Events dedup on openid+time+event.")
@click.option("--scene", help="QR scene: subscribe via QR (EventKey qrscene_<scene>) or scan.")
@click.option("--ticket", help="QR ticket (default: random).")
@click.option("--key", help="Menu key for click.")
@click.option("--page-url", "page_url", help="URL for view (the menu link) or link messages.")
@click.option("--content", help="Text for text / wecom-text.")
@click.option("--msg-id", type=int, help="MsgId (text etc.: default a new one each time) or MsgID (template-status).")
@click.option(
    "--status",
    help="template-status: success | failed:user block | failed: system failed; mass-status; wecom-transfer-fail:"
    " customer_refused | customer_limit_exceed.",
)
@click.option("--total-count", type=int, help="mass-status: TotalCount (and FilterCount).")
@click.option("--sent-count", type=int, help="mass-status: SentCount (default: all).")
@click.option("--error-count", type=int, help="mass-status: ErrorCount (default: total - sent).")
@click.option("--latitude", type=float)
@click.option("--longitude", type=float)
@click.option("--precision", type=float)
@click.option("--scale", type=int)
@click.option("--label")
@click.option("--media-id")
@click.option("--recognition", help="voice: speech recognition text.")
@click.option("--title")
@click.option("--description")
@click.option("--userid", help="WeCom member (rep) userid.")
@click.option("--external-userid", help="WeCom external contact id.")
@click.option("--state", help="WeCom contact-way state.")
@click.option("--welcome-code")
@click.option("--kf-account", help="kf-create / kf-close: KfAccount; kf-switch: FromKfAccount.")
@click.option("--to-kf-account", help="kf-switch: ToKfAccount, the account taking the session over.")
@click.option("--url", "server", help="WeLead base URL (default: the configured public URL).")
@click.option("--timeout", type=float, default=10.0, show_default=True, help="HTTP timeout in seconds.")
@click.option("--show", is_flag=True, help="Also print the query and the body sent.")
def simulate(kind: str, page_url: str | None, server: str | None, timeout: float, show: bool, **options: Any) -> None:
    """POST a signed KIND callback to WeLead and print its answer (decrypted when encrypted)."""
    options = {name: value for name, value in options.items() if value is not None}
    if page_url:
        options["url"] = page_url
    try:
        query, body = build_callback(kind, services().settings, **options)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if kind == "subscribe" and services().settings.sandbox:
        _tell_sandbox(_server(server), options.get("openid") or DEFAULT_OPENID, options.get("scene"), timeout)
    url = _server(server) + callback_path(kind)
    click.echo(f"-> POST {url} ({kind})")
    if show:
        click.echo(f"   query: {query}\n   body: {body.decode()}")
    response = _call("POST", url, timeout, params=query, data=body, headers={"Content-Type": "text/xml"})
    _show_answer(response, "wecom" if is_wecom(kind) else "oa")
    if not response.ok:
        raise click.exceptions.Exit(1)


def _tell_sandbox(base: str, openid: str, scene: str | None, timeout: float) -> None:
    """The sandbox's user/info answers with the scene a follower came by once it knows it (docs/sandbox.md); best
    effort: a WeLead without the sandbox, or not running, is the callback's to report."""
    with contextlib.suppress(requests.RequestException):
        requests.post(f"{base}/sandbox/_control", json={"followed": {openid: scene}}, timeout=timeout)


@wechat_cli.command("verify")
@click.argument("channel", type=click.Choice(["oa", "wecom"]))
@click.option("--url", "server", help="WeLead base URL (default: the configured public URL).")
@click.option("--timeout", type=float, default=10.0, show_default=True)
def verify(channel: Channel, server: str | None, timeout: float) -> None:
    """Send the GET that WeChat (oa) or WeCom sends to verify a callback URL; check the echoed answer."""
    query, expected = build_verification(channel, services().settings)
    url = _server(server) + ("/wecom/callback" if channel == "wecom" else "/wechat/callback")
    click.echo(f"-> GET {url}")
    response = _call("GET", url, timeout, params=query)
    click.echo(f"<- {response.status_code} {response.text[:200]}")
    if response.status_code != 200 or response.text != expected:
        raise click.ClickException(f"verification failed: expected {expected!r}")
    click.echo("verified")


menu_cli = AppGroup("menu", help="The Official Account's custom menu.")


def _load(file: Path) -> Menu:
    try:
        return read_menu(file.read_text(encoding="utf-8"))
    except MenuError as exc:
        raise click.ClickException(f"invalid menu {file}:\n{exc}") from None


@menu_cli.command("check")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def check(file: Path) -> None:
    """Validate FILE and print the JSON that would be sent."""
    click.echo(json.dumps(_load(file).wechat(), ensure_ascii=False, indent=2))


@menu_cli.command("push")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def push(file: Path) -> None:
    """Replace the OA menu with FILE (menu/create)."""
    body = _load(file).wechat()
    svc = services()
    client = OAClient(svc.settings, svc.redis_slow)
    try:
        client.create_menu(body)
    except WeChatError as exc:
        raise click.ClickException(f"menu/create failed: {exc}") from None
    finally:
        client.close()
    click.echo(f"menu pushed: {len(body['button'])} buttons")


wechat_cli.add_command(menu_cli)
