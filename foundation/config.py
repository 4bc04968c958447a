"""Settings in one place, read from the environment by strict parsers.

Every knob WeLead has is here, with its default and meaning; README.md's configuration table mirrors this file.
Nothing is read at import time: `Settings.from_env()` is called by the app factory and the CLI.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = ROOT / "instance"

OA_API_DEFAULT = "https://api.weixin.qq.com/cgi-bin/"
WECOM_API_DEFAULT = "https://qyapi.weixin.qq.com/cgi-bin/"
SANDBOX_TOKEN = "welead-sandbox"


class ConfigError(ValueError):
    """A setting is present but unusable; raised at start, never later."""


def _int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name}: must be >= {minimum}, got {value}")
    return value


def _float(name: str, default: float, minimum: float, maximum: float) -> float:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a number, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name}: must be between {minimum:g} and {maximum:g}, got {value:g}")
    return value


def _str(name: str, default: str = "") -> str:
    return os.environ.get(name, "").strip() or default


def _aes_key(name: str) -> str:
    key = _str(name)
    if key and len(key) != 43:
        raise ConfigError(f"{name}: an EncodingAESKey has 43 characters, got {len(key)}")
    return key


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _level(name: str, default: str) -> str:
    value = _str(name, default).upper()
    if value not in LOG_LEVELS:
        raise ConfigError(f"{name}: expected one of {', '.join(LOG_LEVELS)}, got {value!r}")
    return value


def _instance_secret() -> str:
    """A key generated once and kept under instance/, so signed links survive restarts without configuration."""
    path = INSTANCE / "secret-key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        INSTANCE.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(32)
        try:
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
                out.write(key + "\n")
        except FileExistsError:  # another process won the race: use its key
            return path.read_text().strip()
        return key


def _base(name: str, default: str) -> str:
    url = _str(name, default)
    return url if url.endswith("/") else url + "/"


def _llm() -> dict[str, Any]:
    """The language-model settings; LLM_MODEL is required once LLM_API_BASE turns the feature on."""
    base = _str("LLM_API_BASE").rstrip("/")
    model = _str("LLM_MODEL")
    if base and not model:
        raise ConfigError("LLM_MODEL: required when LLM_API_BASE is set (the model name the endpoint serves)")
    if base and not base.startswith(("http://", "https://")):
        raise ConfigError(f"LLM_API_BASE: expected an http(s) URL, got {base!r}")
    max_chars = _int("LLM_MAX_CHARS", 500, 20)
    if max_chars > 680:  # a customer-service text is at most 2,048 bytes: 680 CJK characters
        raise ConfigError(f"LLM_MAX_CHARS: at most 680 (WeChat's 2,048-byte text), got {max_chars}")
    return {"llm_api_base": base, "llm_model": model, "llm_api_key": _str("LLM_API_KEY"),
            "llm_timeout": _float("LLM_TIMEOUT", 8.0, 0.5, 60.0),
            "llm_consider": _float("LLM_CONSIDER", 0.15, 0.0, 1.0),
            "llm_max_chars": max_chars}  # fmt: skip


@dataclass(frozen=True)
class Settings:
    database_url: str = ""
    redis_url: str = ""
    port: int = 5000
    public_url: str = ""
    wechat_app_id: str = ""
    wechat_app_secret: str = ""
    wechat_token: str = SANDBOX_TOKEN
    wechat_aes_key: str = ""
    wechat_aes_key_previous: str = ""
    wechat_api_base: str = OA_API_DEFAULT
    wecom_corp_id: str = ""
    wecom_agent_id: str = ""
    wecom_secret: str = ""
    wecom_token: str = SANDBOX_TOKEN
    wecom_aes_key: str = ""
    wecom_api_base: str = WECOM_API_DEFAULT
    admin_token: str = ""
    secret_key: str = ""  # signs links WeLead sends (foundation.signing); WELEAD_SECRET_KEY or instance/secret-key
    replay_window: int = 300
    max_body: int = 64 * 1024
    http_timeout: int = 5
    log_level: str = "INFO"  # WeLead's own loggers; RQ's per-job chatter only at DEBUG (welead.app.configure_logging)
    lead_pool_days: int = 0  # leads whose owner has not acted for this many days are reassigned (0: off; docs/reps.md)
    # Language-model answers (docs/chatbot.md): an OpenAI-compatible endpoint; off while llm_api_base is empty.
    llm_api_base: str = ""  # LLM_API_BASE, e.g. http://127.0.0.1:11434/v1 (POST {base}/chat/completions)
    llm_model: str = ""  # LLM_MODEL: required when the base is set
    llm_api_key: str = ""  # LLM_API_KEY: sent as a bearer token when set
    llm_timeout: float = 8.0  # LLM_TIMEOUT: seconds the model has for one answer, connect to last byte
    llm_consider: float = 0.15  # LLM_CONSIDER: FAQ confidence from which a question goes to the model
    llm_max_chars: int = 500  # LLM_MAX_CHARS: a longer answer is refused (the FAQ's goes out instead)
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> Settings:
        """Read the environment; fill sandbox defaults where WeChat credentials are absent."""
        port = _int("PORT", 5000, 1)
        sandbox_oa = not (_str("WECHAT_APP_ID") and _str("WECHAT_APP_SECRET"))
        sandbox_wecom = not (_str("WECOM_CORP_ID") and _str("WECOM_SECRET"))
        local = _str("WELEAD_PUBLIC_URL", f"http://127.0.0.1:{port}").rstrip("/")
        return cls(
            database_url=_str("DATABASE_URL", f"sqlite:///{INSTANCE / 'welead.db'}"),
            redis_url=_str("REDIS_URL"),
            port=port,
            public_url=local,
            wechat_app_id=_str("WECHAT_APP_ID", "wxsandbox0000000"),
            wechat_app_secret=_str("WECHAT_APP_SECRET", "sandbox-secret"),
            wechat_token=_str("WECHAT_TOKEN", SANDBOX_TOKEN),
            wechat_aes_key=_aes_key("WECHAT_AES_KEY"),
            wechat_aes_key_previous=_aes_key("WECHAT_AES_KEY_PREVIOUS"),
            wechat_api_base=_base(
                "WECHAT_API_BASE",
                f"{local}/sandbox/oa/cgi-bin/" if sandbox_oa else OA_API_DEFAULT,
            ),
            wecom_corp_id=_str("WECOM_CORP_ID", "wwsandbox0000000"),
            wecom_agent_id=_str("WECOM_AGENT_ID", "1000002"),
            wecom_secret=_str("WECOM_SECRET", "sandbox-secret"),
            wecom_token=_str("WECOM_TOKEN", SANDBOX_TOKEN),
            wecom_aes_key=_aes_key("WECOM_AES_KEY") or "welead0sandbox0wecom0aes0key0000000000000000"[:43],
            wecom_api_base=_base(
                "WECOM_API_BASE",
                f"{local}/sandbox/wecom/cgi-bin/" if sandbox_wecom else WECOM_API_DEFAULT,
            ),
            admin_token=_str("WELEAD_ADMIN_TOKEN"),
            secret_key=_str("WELEAD_SECRET_KEY") or _instance_secret(),
            replay_window=_int("WELEAD_REPLAY_WINDOW", 300, 1),
            max_body=_int("WELEAD_MAX_BODY", 64 * 1024, 1024),
            http_timeout=_int("WELEAD_HTTP_TIMEOUT", 5, 1),
            log_level=_level("WELEAD_LOG_LEVEL", "INFO"),
            lead_pool_days=_int("WELEAD_LEAD_POOL_DAYS", 0, 0),
            **_llm(),
        )

    @property
    def llm_on(self) -> bool:
        """Whether questions may be answered by the language model (LLM_API_BASE set)."""
        return bool(self.llm_api_base)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @property
    def sandbox(self) -> bool:
        """True when outbound calls go to the built-in fake of WeChat's API."""
        return "/sandbox/" in self.wechat_api_base
