"""Model rules, applied when a generation runs (not at enqueue), as the real service does.

Each rule set takes the request body and a ``fetch`` callback and returns the ``error_message`` of
the first broken rule, or None. Messages documented by Oxen are reproduced verbatim.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

Fetch = Callable[[str], bool]
Body = Mapping[str, Any]
RuleSet = Callable[[Body, Fetch], str | None]

# Verbatim from Oxen's docs (walkthrough and video generation reference).
VALUE_ERROR = "Getting model response error: 422 - Value error, "
BOTH_PROMPTS = VALUE_ERROR + "Cannot provide both 'prompt' and 'multi_prompt'."
NO_PROMPT = VALUE_ERROR + "Either 'prompt' or 'multi_prompt' must be provided."
FIELD_REQUIRED = "Field required"
SHOT_DURATION = "Input should be " + ", ".join(f"'{n}'" for n in range(1, 15)) + " or '15'"
MAX_TOTAL = 15
MIN_TOTAL = 3


def duration_invalid(value: object) -> str:
    return (
        f"duration value '{value}' is invalid. Try using duration='5' instead, "
        "as duration support may vary by model and mode."
    )


def total_too_long(total: int) -> str:
    return f"Total shot duration ({total}s) exceeds maximum allowed ({MAX_TOTAL}s)."


# Emulator wording (Oxen documents no text for these); pydantic/fal style.
NOT_A_STRING = "Input should be a valid string"
NOT_A_LIST = "Input should be a valid list"
NOT_AN_OBJECT = "Input should be a valid dictionary"
TAIL_NEEDS_START = VALUE_ERROR + "'tail_image_url' requires 'start_image_url'."
MAX_PROMPT = 512


def prompt_too_long(limit: int) -> str:
    return f"String should have at most {limit} characters"


def one_of(values: tuple[str, ...]) -> str:
    quoted = [f"'{v}'" for v in values]
    listed = ", ".join(quoted[:-1]) + " or " + quoted[-1] if len(quoted) > 1 else quoted[0]
    return "Input should be " + listed


def too_many_images(count: int, limit: int) -> str:
    return (
        f"{VALUE_ERROR}Too many images: {count} provided, "
        f"maximum {limit} total (elements + reference images)."
    )


def forbidden(url: str) -> str:
    shown = url if len(url) <= 120 else url[:117] + "..."
    return f"Getting model response error: 403 Client Error: Forbidden for url: {shown}"


def _provided(value: Any) -> bool:
    return value is not None and value != [] and value != ""


def _as_int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _check_prompt(prompt: Any, limit: int = MAX_PROMPT) -> str | None:
    if prompt is None:
        return FIELD_REQUIRED
    if not isinstance(prompt, str):
        return NOT_A_STRING
    return prompt_too_long(limit) if len(prompt) > limit else None


def _check_total(value: Any) -> str | None:
    seconds = _as_int(value)
    if seconds is None or not MIN_TOTAL <= seconds <= MAX_TOTAL:
        return duration_invalid(value)
    return None


def _check_shots(shots: Any) -> str | None:
    if not isinstance(shots, list):
        return NOT_A_LIST
    total = 0
    for shot in shots:
        if not isinstance(shot, dict):
            return NOT_AN_OBJECT
        error = _check_prompt(shot.get("prompt"))
        seconds = _as_int(shot.get("duration", 5))
        if error is None and (seconds is None or not 1 <= seconds <= MAX_TOTAL):
            error = SHOT_DURATION
        if error:
            return error
        total += seconds or 0
    if total < MIN_TOTAL:
        return duration_invalid(total)
    return total_too_long(total) if total > MAX_TOTAL else None


def _check_prompt_or_shots(body: Body) -> str | None:
    has_prompt, has_shots = _provided(body.get("prompt")), _provided(body.get("multi_prompt"))
    if has_prompt and has_shots:
        return BOTH_PROMPTS
    if not has_prompt and not has_shots:
        return NO_PROMPT
    if has_shots:
        return _check_shots(body["multi_prompt"])
    return _check_prompt(body["prompt"]) or _check_total(body.get("duration", 5))


def _check_enum(body: Body, name: str, values: tuple[str, ...]) -> str | None:
    value = body.get(name)
    return None if value is None or value in values else one_of(values)


def _string_list(value: Any) -> str | None:
    if not isinstance(value, list):
        return NOT_A_LIST
    return None if all(isinstance(item, str) for item in value) else NOT_A_STRING


def _check_elements(elements: Any) -> str | None:
    if not isinstance(elements, list):
        return NOT_A_LIST
    for element in elements:
        if not isinstance(element, dict):
            return NOT_AN_OBJECT
        if element.get("frontal_image_url") is None:
            return FIELD_REQUIRED
        if not isinstance(element["frontal_image_url"], str):
            return NOT_A_STRING
        refs = element.get("reference_image_urls", [])
        error = _string_list(refs)
        if error:
            return error
        if len(refs) > 3:
            return f"List should have at most 3 items after validation, not {len(refs)}"
    return None


def _check_images(body: Body, limit: int) -> str | None:
    images, elements = body.get("input_image", []), body.get("elements", [])
    error = (_string_list(images) if images is not None else None) or (
        _check_elements(elements) if elements is not None else None
    )
    if error:
        return error
    count = len(images or []) + sum(1 + len(e.get("reference_image_urls", [])) for e in elements or [])
    return too_many_images(count, limit) if count > limit else None


def _check_frames(body: Body) -> str | None:
    for name in ("start_image_url", "tail_image_url", "input_video"):
        if body.get(name) is not None and not isinstance(body[name], str):
            return NOT_A_STRING
    if body.get("tail_image_url") is not None and body.get("start_image_url") is None:
        return TAIL_NEEDS_START
    return None


def reference_urls(body: Body) -> Iterator[str]:
    """Every URL a model downloads for this request, in a stable order."""
    for name in ("start_image_url", "tail_image_url", "input_video"):
        if isinstance(body.get(name), str):
            yield body[name]
    yield from body.get("input_image") or []
    for element in body.get("elements") or []:
        yield element["frontal_image_url"]
        yield from element.get("reference_image_urls", [])


def _fetch_all(body: Body, fetch: Fetch) -> str | None:
    for url in reference_urls(body):
        if not fetch(url):
            return forbidden(url)
    return None


def kling_o3_reference(body: Body, fetch: Fetch) -> str | None:
    return (
        _check_prompt_or_shots(body)
        or _check_enum(body, "aspect_ratio", ("9:16", "1:1", "16:9"))
        or _check_images(body, 4)
        or _check_frames(body)
        or _fetch_all(body, fetch)
    )


def kling_o3_omni(body: Body, fetch: Fetch) -> str | None:
    image_limit = 4 if body.get("input_video") is not None else 7
    return (
        _check_prompt(body.get("prompt"))
        or _check_total(body.get("duration", 5))
        or _check_enum(body, "aspect_ratio", ("16:9", "9:16", "1:1"))
        or _check_enum(body, "video_mode", ("edit", "reference"))
        or _check_enum(body, "resolution", ("720p", "1080p", "4k"))
        or _check_images(body, image_limit)
        or _check_frames(body)
        or _fetch_all(body, fetch)
    )


def text_to_video(body: Body, fetch: Fetch) -> str | None:
    duration = body.get("duration", "5")
    bad_duration = str(duration) not in ("5", "10") or isinstance(duration, bool)
    return (
        _check_prompt(body.get("prompt"), 2500)
        or (one_of(("5", "10")) if bad_duration else None)
        or _check_enum(body, "aspect_ratio", ("9:16", "1:1", "16:9"))
    )


def image(body: Body, fetch: Fetch) -> str | None:
    return (
        _check_prompt(body.get("prompt"), 2500)
        or _check_enum(body, "aspect_ratio", ("1:1", "4:3", "3:4", "16:9", "9:16"))
        or _check_images(body, 4)
        or _fetch_all(body, fetch)
    )


def no_rules(body: Body, fetch: Fetch) -> str | None:
    return None


RULE_SETS: dict[str, RuleSet] = {
    "kling_o3_reference": kling_o3_reference,
    "kling_o3_omni": kling_o3_omni,
    "text_to_video": text_to_video,
    "image": image,
    "none": no_rules,
}


def check(rules: str, body: Body, fetch: Fetch) -> str | None:
    """The error_message a generation of ``body`` fails with, or None if it renders."""
    return RULE_SETS[rules](body, fetch)
