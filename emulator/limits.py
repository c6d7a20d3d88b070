"""Discord's documented size limits, checked the way Discord checks them (50035 Invalid Form Body)."""

from __future__ import annotations

import re
from typing import Any

from .errors import EMPTY_MESSAGE, APIError, FormErrors

CONTENT_MAX = 2000
EMBEDS_MAX = 10
EMBED_TOTAL_MAX = 6000
EMBED_TITLE_MAX = 256
EMBED_DESCRIPTION_MAX = 4096
EMBED_FIELDS_MAX = 25
EMBED_FIELD_NAME_MAX = 256
EMBED_FIELD_VALUE_MAX = 1024
EMBED_FOOTER_MAX = 2048
EMBED_AUTHOR_MAX = 256
ACTION_ROWS_MAX = 5
ROW_BUTTONS_MAX = 5
CUSTOM_ID_MAX = 100
BUTTON_LABEL_MAX = 80
SELECT_OPTIONS_MAX = 25
SELECT_TEXT_MAX = 100
PLACEHOLDER_MAX = 150
MODAL_TITLE_MAX = 45
MODAL_COMPONENTS_MAX = 5
TEXT_INPUT_LABEL_MAX = 45
TEXT_INPUT_VALUE_MAX = 4000
TEXT_INPUT_PLACEHOLDER_MAX = 100
LABEL_DESCRIPTION_MAX = 100
COMPONENTS_V2_FLAG = 1 << 15
COMPONENTS_V2_TOTAL_MAX = 40

ACTION_ROW, BUTTON, STRING_SELECT, TEXT_INPUT = 1, 2, 3, 4
SELECT_TYPES = (3, 5, 6, 7, 8)
LABEL = 18
# What a modal label may hold besides a text input: selects, file upload, radio, checkbox group, checkbox.
MODAL_INPUT_TYPES = (*SELECT_TYPES, 19, 21, 22, 23)
TEXT_DISPLAY = 10
LINK_STYLE, PREMIUM_STYLE = 5, 6

COMMAND_NAME_RE = re.compile(r"^[-_\w]{1,32}$")


def _len_check(errors: FormErrors, path: tuple, value: Any, limit: int, *, minimum: int = 0) -> int:
    if value is None:
        return 0
    n = len(str(value))
    if n > limit:
        errors.add(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")
    elif n < minimum:
        errors.add(path, "BASE_TYPE_MIN_LENGTH", f"Must be {minimum} or more in length.")
    return n


def check_embeds(errors: FormErrors, embeds: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    if not embeds:
        return []
    if len(embeds) > EMBEDS_MAX:
        errors.add(("embeds",), "BASE_TYPE_MAX_LENGTH", f"Must be {EMBEDS_MAX} or fewer in length.")
    total = 0
    out = []
    for i, embed in enumerate(embeds):
        p = ("embeds", i)
        total += _len_check(errors, p + ("title",), embed.get("title"), EMBED_TITLE_MAX)
        total += _len_check(errors, p + ("description",), embed.get("description"), EMBED_DESCRIPTION_MAX)
        footer = embed.get("footer") or {}
        total += _len_check(errors, p + ("footer", "text"), footer.get("text"), EMBED_FOOTER_MAX)
        author = embed.get("author") or {}
        total += _len_check(errors, p + ("author", "name"), author.get("name"), EMBED_AUTHOR_MAX)
        fields = embed.get("fields") or []
        if len(fields) > EMBED_FIELDS_MAX:
            errors.add(p + ("fields",), "BASE_TYPE_MAX_LENGTH", f"Must be {EMBED_FIELDS_MAX} or fewer in length.")
        for j, f in enumerate(fields):
            total += _len_check(errors, p + ("fields", j, "name"), f.get("name"), EMBED_FIELD_NAME_MAX, minimum=1)
            total += _len_check(errors, p + ("fields", j, "value"), f.get("value"), EMBED_FIELD_VALUE_MAX, minimum=1)
        clean = {k: v for k, v in embed.items() if v is not None}
        clean.setdefault("type", "rich")
        out.append(clean)
    if total > EMBED_TOTAL_MAX:
        errors.add(("embeds",), "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")
    return out


def _check_button(errors: FormErrors, p: tuple, comp: dict[str, Any]) -> None:
    style = comp.get("style")
    _len_check(errors, p + ("label",), comp.get("label"), BUTTON_LABEL_MAX)
    if style == LINK_STYLE:
        if not comp.get("url"):
            errors.add(p + ("url",), "BUTTON_COMPONENT_URL_REQUIRED", "A url is required")
        if comp.get("custom_id"):
            errors.add(p + ("custom_id",), "BUTTON_COMPONENT_LINK_CUSTOM_ID", "A custom id cannot be set on link")
    elif style == PREMIUM_STYLE:
        if not comp.get("sku_id"):
            errors.add(p + ("sku_id",), "BASE_TYPE_REQUIRED", "This field is required")
    else:
        if not comp.get("custom_id"):
            errors.add(p + ("custom_id",), "BUTTON_COMPONENT_CUSTOM_ID_REQUIRED", "A custom id is required")
        if style not in (1, 2, 3, 4):
            errors.add(p + ("style",), "BASE_TYPE_CHOICES", "Value must be one of {1, 2, 3, 4, 5, 6}.")


def _check_select(errors: FormErrors, p: tuple, comp: dict[str, Any]) -> None:
    _len_check(errors, p + ("placeholder",), comp.get("placeholder"), PLACEHOLDER_MAX)
    min_v = 1 if comp.get("min_values") is None else comp["min_values"]
    max_v = 1 if comp.get("max_values") is None else comp["max_values"]
    if not 0 <= min_v <= 25:
        errors.add(p + ("min_values",), "NUMBER_TYPE_MAX", "int value should be between 0 and 25.")
    if not 1 <= max_v <= 25:
        errors.add(p + ("max_values",), "NUMBER_TYPE_MAX", "int value should be between 1 and 25.")
    if comp["type"] == STRING_SELECT:
        options = comp.get("options") or []
        if not 1 <= len(options) <= SELECT_OPTIONS_MAX:
            errors.add(p + ("options",), "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 25 in length.")
        for k, opt in enumerate(options):
            _len_check(errors, p + ("options", k, "label"), opt.get("label"), SELECT_TEXT_MAX, minimum=1)
            _len_check(errors, p + ("options", k, "value"), opt.get("value"), SELECT_TEXT_MAX, minimum=1)
            _len_check(errors, p + ("options", k, "description"), opt.get("description"), SELECT_TEXT_MAX)
        if max_v > len(options) and options:
            errors.add(p + ("max_values",), "SELECT_COMPONENT_MAX_VALUES_EXCEEDS_OPTIONS", "max_values exceeds options")


def _check_custom_id(errors: FormErrors, p: tuple, comp: dict[str, Any], seen: set[str]) -> None:
    cid = comp.get("custom_id")
    if cid is None:
        return
    _len_check(errors, p + ("custom_id",), cid, CUSTOM_ID_MAX, minimum=1)
    if cid in seen:
        errors.add(p + ("custom_id",), "COMPONENT_CUSTOM_ID_DUPLICATED", "Component custom id cannot be duplicated")
    seen.add(cid)


def _number(components: list[dict[str, Any]], counter: list[int]) -> list[dict[str, Any]]:
    """Discord gives every component a numeric `id` when the sender did not."""
    out = []
    for comp in components:
        comp = dict(comp)
        counter[0] += 1
        comp.setdefault("id", counter[0])
        if "components" in comp:
            comp["components"] = _number(comp["components"], counter)
        if "component" in comp:
            comp["component"] = _number([comp["component"]], counter)[0]
        if "accessory" in comp:
            comp["accessory"] = _number([comp["accessory"]], counter)[0]
        out.append(comp)
    return out


def check_message_components(
    errors: FormErrors, components: list[dict[str, Any]] | None, flags: int = 0
) -> list[dict[str, Any]]:
    if not components:
        return []
    seen: set[str] = set()
    if flags & COMPONENTS_V2_FLAG:
        total = 0

        def walk(comps, path):
            nonlocal total
            for i, comp in enumerate(comps):
                total += 1
                p = path + (i,)
                _check_custom_id(errors, p, comp, seen)
                if comp.get("type") == BUTTON:
                    _check_button(errors, p, comp)
                elif comp.get("type") in SELECT_TYPES:
                    _check_select(errors, p, comp)
                for key in ("components",):
                    if key in comp:
                        walk(comp[key], p + (key,))
                if "accessory" in comp:
                    walk([comp["accessory"]], p + ("accessory",))

        walk(components, ("components",))
        if total > COMPONENTS_V2_TOTAL_MAX:
            errors.add(("components",), "BASE_TYPE_MAX_LENGTH", "Must be 40 or fewer in length.")
        return _number(components, [0])

    if len(components) > ACTION_ROWS_MAX:
        errors.add(("components",), "BASE_TYPE_MAX_LENGTH", f"Must be {ACTION_ROWS_MAX} or fewer in length.")
    for i, row in enumerate(components):
        p = ("components", i)
        if row.get("type") != ACTION_ROW:
            errors.add(p + ("type",), "UNION_TYPE_CHOICES", "Value of field \"type\" must be one of (1,).")
            continue
        children = row.get("components") or []
        if not children:
            errors.add(p + ("components",), "BASE_TYPE_MIN_LENGTH", "Must be 1 or more in length.")
        selects = [c for c in children if c.get("type") in SELECT_TYPES]
        if selects and len(children) > 1:
            errors.add(p + ("components",), "COMPONENT_LAYOUT_WIDTH_EXCEEDED", "The specified component exceeds the maximum width")
        if len(children) > ROW_BUTTONS_MAX:
            errors.add(p + ("components",), "BASE_TYPE_MAX_LENGTH", f"Must be {ROW_BUTTONS_MAX} or fewer in length.")
        for j, comp in enumerate(children):
            cp = p + ("components", j)
            _check_custom_id(errors, cp, comp, seen)
            if comp.get("type") == BUTTON:
                _check_button(errors, cp, comp)
            elif comp.get("type") in SELECT_TYPES:
                _check_select(errors, cp, comp)
            else:
                errors.add(cp + ("type",), "COMPONENT_TYPE_INVALID", "Invalid component type in an action row")
    return _number(components, [0])


def check_message_payload(payload: dict[str, Any], *, n_files: int = 0, creating: bool = True) -> FormErrors:
    """Validate content, embeds and components of a message create/edit body; raise on a violation."""
    errors = FormErrors()
    content = payload.get("content")
    if content is not None and len(str(content)) > CONTENT_MAX:
        errors.add(("content",), "BASE_TYPE_MAX_LENGTH", f"Must be {CONTENT_MAX} or fewer in length.")
    flags = int(payload.get("flags") or 0)
    if "embeds" in payload or "embed" in payload:
        embeds = payload.get("embeds")
        if embeds is None and payload.get("embed") is not None:
            embeds = [payload["embed"]]
        payload["embeds"] = check_embeds(errors, embeds)
    if "components" in payload:
        payload["components"] = check_message_components(errors, payload.get("components"), flags)
    if flags & COMPONENTS_V2_FLAG and (payload.get("content") or payload.get("embeds")):
        errors.add(("content",), "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2", "content and embeds cannot be used with components v2")
    errors.raise_if_any()
    if creating:
        has_body = (
            bool(payload.get("content"))
            or bool(payload.get("embeds"))
            or bool(payload.get("components"))
            or n_files > 0
            or bool(payload.get("sticker_ids"))
            or bool(payload.get("poll"))
        )
        if not has_body:
            raise APIError(EMPTY_MESSAGE)
    return errors


def check_modal(data: dict[str, Any]) -> dict[str, Any]:
    errors = FormErrors()
    base = ("data",)
    _len_check(errors, base + ("title",), data.get("title"), MODAL_TITLE_MAX, minimum=1)
    _len_check(errors, base + ("custom_id",), data.get("custom_id"), CUSTOM_ID_MAX, minimum=1)
    comps = data.get("components") or []
    if not 1 <= len(comps) <= MODAL_COMPONENTS_MAX:
        errors.add(base + ("components",), "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length.")
    seen: set[str] = set()
    for i, top in enumerate(comps):
        p = base + ("components", i)
        kind = top.get("type")
        if kind == ACTION_ROW:
            children = top.get("components") or []
            if len(children) != 1 or children[0].get("type") != TEXT_INPUT:
                errors.add(p + ("components",), "BASE_TYPE_BAD_LENGTH", "Must be a single text input")
                continue
            _check_text_input(errors, p + ("components", 0), children[0], seen, in_label=False)
        elif kind == LABEL:
            _len_check(errors, p + ("label",), top.get("label"), TEXT_INPUT_LABEL_MAX, minimum=1)
            _len_check(errors, p + ("description",), top.get("description"), LABEL_DESCRIPTION_MAX)
            child = top.get("component") or {}
            if child.get("type") == TEXT_INPUT:
                _check_text_input(errors, p + ("component",), child, seen, in_label=True)
            elif child.get("type") in MODAL_INPUT_TYPES:
                _check_custom_id(errors, p + ("component",), child, seen)
                if child.get("type") in SELECT_TYPES:
                    _check_select(errors, p + ("component",), child)
            else:
                errors.add(p + ("component", "type"), "COMPONENT_TYPE_INVALID", "Invalid component type for a label")
        elif kind != TEXT_DISPLAY:
            errors.add(p + ("type",), "COMPONENT_TYPE_INVALID", "Invalid component type for a modal")
    errors.raise_if_any()
    out = dict(data)
    out["components"] = _number(comps, [0])
    return out


def _check_text_input(errors: FormErrors, p: tuple, comp: dict[str, Any], seen: set[str], *, in_label: bool) -> None:
    _check_custom_id(errors, p, comp, seen)
    if not in_label:
        _len_check(errors, p + ("label",), comp.get("label"), TEXT_INPUT_LABEL_MAX, minimum=1)
    _len_check(errors, p + ("placeholder",), comp.get("placeholder"), TEXT_INPUT_PLACEHOLDER_MAX)
    _len_check(errors, p + ("value",), comp.get("value"), TEXT_INPUT_VALUE_MAX)
    lo, hi = comp.get("min_length"), comp.get("max_length")  # None: not set
    if lo is not None and not 0 <= lo <= TEXT_INPUT_VALUE_MAX:
        errors.add(p + ("min_length",), "NUMBER_TYPE_MAX", "int value should be between 0 and 4000.")
    if hi is not None and not 1 <= hi <= TEXT_INPUT_VALUE_MAX:
        errors.add(p + ("max_length",), "NUMBER_TYPE_MAX", "int value should be between 1 and 4000.")


def check_command(errors: FormErrors, path: tuple, cmd: dict[str, Any]) -> None:
    kind = int(cmd.get("type", 1))
    name = cmd.get("name") or ""
    if kind == 1:
        if not COMMAND_NAME_RE.match(name) or name != name.lower():
            errors.add(path + ("name",), "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
        _len_check(errors, path + ("description",), cmd.get("description"), 100, minimum=1)
    else:
        _len_check(errors, path + ("name",), name, 32, minimum=1)
    _check_options(errors, path, cmd.get("options") or [], depth=0)


def _check_options(errors: FormErrors, path: tuple, options: list[dict[str, Any]], depth: int) -> None:
    if len(options) > 25:
        errors.add(path + ("options",), "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    seen_optional = False
    names: set[str] = set()
    for i, opt in enumerate(options):
        p = path + ("options", i)
        name = opt.get("name") or ""
        if not COMMAND_NAME_RE.match(name) or name != name.lower():
            errors.add(p + ("name",), "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
        if name in names:
            errors.add(p + ("name",), "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS", "Option names must be unique")
        names.add(name)
        _len_check(errors, p + ("description",), opt.get("description"), 100, minimum=1)
        if len(opt.get("choices") or []) > 25:
            errors.add(p + ("choices",), "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        if opt.get("type") in (1, 2):
            if depth >= 2 or (opt["type"] == 2 and depth >= 1):
                errors.add(p + ("type",), "APPLICATION_COMMAND_OPTION_TYPE_INVALID", "Subcommands nest too deep")
            _check_options(errors, p, opt.get("options") or [], depth + 1)
            continue
        if opt.get("required"):
            if seen_optional:
                errors.add(p + ("required",), "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID", "Required options must be placed before non-required options")
        else:
            seen_optional = True
