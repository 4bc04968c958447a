"""The limits WeChat puts on a code's scene and state, checked once, where codes are created (personal and team).

WeChat refuses a permanent QR code whose scene_str is longer than 64 characters, and WeCom an add_contact_way whose
state is longer than 30 (WECHAT.md). Checking before the call turns a confusing upstream error into a 400 that says
which limit, and keeps a half-made code (an OA ticket without its contact way) from ever being stored.
"""

from __future__ import annotations

SCENE_MAX = 64  # qrcode/create scene_str, 1-64 characters
STATE_MAX = 30  # externalcontact/add_contact_way state, at most 30 characters


class CodeRuleError(ValueError):
    """A scene or state WeChat would refuse; the message says which limit."""


def check_scene(scene: str) -> str:
    """`scene` if an OA QR code may carry it (1-64 characters), else CodeRuleError."""
    if not isinstance(scene, str) or not 1 <= len(scene) <= SCENE_MAX:
        raise CodeRuleError(f"scene {scene!r}: an OA QR code scene has 1 to {SCENE_MAX} characters")
    return scene


def check_state(state: str) -> str:
    """`state` if a WeCom contact way may carry it (1-30 characters), else CodeRuleError."""
    if not isinstance(state, str) or not 1 <= len(state) <= STATE_MAX:
        raise CodeRuleError(f"state {state!r}: a WeCom contact way state has 1 to {STATE_MAX} characters")
    return state


def check_code(value: str) -> str:
    """A string used as both scene and state (WeLead's codes are): the stricter limit, 30, applies."""
    return check_state(check_scene(value))
