"""The OA custom menu from a YAML file: validated against WeChat's limits, pushed with `menu/create`.

```yaml
menu:
  - name: Products
    items:
      - {name: Pricing, click: MENU_PRICING}
      - {name: Blog, view: "https://example.com/blog/"}
  - {name: Demo, click: MENU_DEMO}
```

Limits (WeChat): 1-3 top buttons, 1-5 items under each, names up to 16 bytes (top) / 60 bytes (items), click keys up
to 128 bytes, view URLs up to 256 bytes. `flask wechat menu check FILE` validates; `push FILE` replaces the menu.
"""

from __future__ import annotations

from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator


def _bytes(limit: int, what: str):
    def check(value: str) -> str:
        if len(value.encode()) > limit:
            raise ValueError(f"{what} is {len(value.encode())} bytes; WeChat allows {limit}")
        return value

    return AfterValidator(check)


def _url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("a view URL starts with http:// or https://")
    return value


Key = Annotated[str, Field(min_length=1), _bytes(128, "the key")]
Url = Annotated[str, Field(min_length=1), _bytes(256, "the URL"), AfterValidator(_url)]


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1), _bytes(60, "the name")]
    click: Key | None = None
    view: Url | None = None

    @model_validator(mode="after")
    def _one(self) -> Item:
        if (self.click is None) == (self.view is None):
            raise ValueError("an item has either click (a key) or view (a URL)")
        return self

    def wechat(self) -> dict[str, Any]:
        if self.click is not None:
            return {"type": "click", "name": self.name, "key": self.click}
        return {"type": "view", "name": self.name, "url": self.view}


class Button(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1), _bytes(16, "a top-level name")]
    click: Key | None = None
    view: Url | None = None
    items: list[Item] | None = Field(None, min_length=1, max_length=5)

    @model_validator(mode="after")
    def _one(self) -> Button:
        if sum(x is not None for x in (self.click, self.view, self.items)) != 1:
            raise ValueError("a button has exactly one of click, view or items")
        return self

    def wechat(self) -> dict[str, Any]:
        if self.items is not None:
            return {"name": self.name, "sub_button": [i.wechat() for i in self.items]}
        return Item(name=self.name, click=self.click, view=self.view).wechat()


class Menu(BaseModel):
    model_config = ConfigDict(extra="forbid")
    menu: list[Button] = Field(min_length=1, max_length=3)

    def wechat(self) -> dict[str, Any]:
        """The `menu/create` body."""
        return {"button": [b.wechat() for b in self.menu]}


class MenuError(ValueError):
    pass


def read_menu(text: str) -> Menu:
    """Parse and validate; MenuError lists every problem with its path (`menu[0].items[2].click: ...`)."""
    try:
        return Menu.model_validate(yaml.safe_load(text))
    except yaml.YAMLError as exc:
        raise MenuError(f"not valid YAML: {exc}") from None
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
            problems.append(f"{where or '(top)'}: {str(err['msg']).removeprefix('Value error, ')}")
        raise MenuError("\n".join(problems)) from None
