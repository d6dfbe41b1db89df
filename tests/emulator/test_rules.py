"""Model rules, applied when a generation runs: each documented error string, and reference fetching."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from batchgen.emulator import rules

from .support import EXAMPLE_IMAGE, FLUX, KLING, OMNI, T2V, Api

BOTH = "Getting model response error: 422 - Value error, Cannot provide both 'prompt' and 'multi_prompt'."
EITHER = (
    "Getting model response error: 422 - Value error, Either 'prompt' or 'multi_prompt' must be provided."
)
SHOT_RANGE = (
    "Input should be '1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12', '13', '14' or '15'"
)


def too_short(seconds: int) -> str:
    return (
        f"duration value '{seconds}' is invalid. Try using duration='5' instead, "
        "as duration support may vary by model and mode."
    )


def shots(*durations: int) -> list[dict[str, Any]]:
    return [{"prompt": f"shot {n}", "duration": d} for n, d in enumerate(durations)]


PNG_DATA_URI = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
UNREACHABLE = "https://example.com/private/ref.png"

KLING_CASES: list[tuple[str, dict[str, Any], str | None]] = [
    ("both prompts", {"prompt": "a", "multi_prompt": shots(5)}, BOTH),
    ("neither prompt", {}, EITHER),
    ("empty multi_prompt", {"multi_prompt": []}, EITHER),
    ("shot without prompt", {"multi_prompt": [{"duration": 5}]}, "Field required"),
    ("prompt too long", {"prompt": "x" * 513}, "String should have at most 512 characters"),
    ("prompt of 512 chars", {"prompt": "x" * 512}, None),
    ("duration 2", {"prompt": "a", "duration": 2}, too_short(2)),
    ("duration 1", {"prompt": "a", "duration": 1}, too_short(1)),
    ("duration 3", {"prompt": "a", "duration": 3}, None),
    ("duration 15", {"prompt": "a", "duration": 15}, None),
    ("duration as string", {"prompt": "a", "duration": "10"}, None),
    ("single shot 1s", {"multi_prompt": shots(1)}, too_short(1)),
    ("single shot 2s", {"multi_prompt": shots(2)}, too_short(2)),
    ("single shot 3s", {"multi_prompt": shots(3)}, None),
    ("shots 2+1", {"multi_prompt": shots(2, 1)}, None),
    ("shots 1+1", {"multi_prompt": shots(1, 1)}, too_short(2)),
    ("shots 5+5+5", {"multi_prompt": shots(5, 5, 5)}, None),
    (
        "shots 5+5+6",
        {"multi_prompt": shots(5, 5, 6)},
        "Total shot duration (16s) exceeds maximum allowed (15s).",
    ),
    ("shot of 16s", {"multi_prompt": shots(16)}, SHOT_RANGE),
    ("shot of 0s", {"multi_prompt": shots(0, 5)}, SHOT_RANGE),
    ("shot default duration", {"multi_prompt": [{"prompt": "a"}]}, None),
    ("bad aspect ratio", {"prompt": "a", "aspect_ratio": "4:3"}, "Input should be '9:16', '1:1' or '16:9'"),
    ("four images", {"prompt": "a", "input_image": [EXAMPLE_IMAGE] * 4}, None),
    ("five images", {"prompt": "a", "input_image": [EXAMPLE_IMAGE] * 5}, rules.too_many_images(5, 4)),
    (
        "images plus elements over 4",
        {
            "prompt": "a",
            "input_image": [EXAMPLE_IMAGE] * 2,
            "elements": [
                {"frontal_image_url": EXAMPLE_IMAGE, "reference_image_urls": [EXAMPLE_IMAGE, EXAMPLE_IMAGE]}
            ],
        },
        rules.too_many_images(5, 4),
    ),
    (
        "element without frontal image",
        {"prompt": "a", "elements": [{"reference_image_urls": []}]},
        "Field required",
    ),
    (
        "element with 4 references",
        {
            "prompt": "a",
            "elements": [{"frontal_image_url": EXAMPLE_IMAGE, "reference_image_urls": [EXAMPLE_IMAGE] * 4}],
        },
        "List should have at most 3 items after validation, not 4",
    ),
    (
        "tail without start",
        {"prompt": "a", "tail_image_url": EXAMPLE_IMAGE},
        "Getting model response error: 422 - Value error, 'tail_image_url' requires 'start_image_url'.",
    ),
    (
        "start and tail",
        {"prompt": "a", "start_image_url": EXAMPLE_IMAGE, "tail_image_url": EXAMPLE_IMAGE},
        None,
    ),
    (
        "unreachable reference",
        {"prompt": "a", "input_image": [UNREACHABLE]},
        f"Getting model response error: 403 Client Error: Forbidden for url: {UNREACHABLE}",
    ),
    (
        "missing repo file",
        {"prompt": "a", "start_image_url": EXAMPLE_IMAGE.replace("bloxy_cropped", "nope")},
        rules.forbidden(EXAMPLE_IMAGE.replace("bloxy_cropped", "nope")),
    ),
    ("data uri", {"prompt": "a", "input_image": [PNG_DATA_URI]}, None),
    (
        "broken data uri",
        {"prompt": "a", "input_image": ["data:image/png;base64,@@@"]},
        rules.forbidden("data:image/png;base64,@@@"),
    ),
]


@pytest.mark.parametrize(
    ("body", "error"), [case[1:] for case in KLING_CASES], ids=[c[0] for c in KLING_CASES]
)
async def test_kling_reference_rules(api: Api, body: dict[str, Any], error: str | None) -> None:
    """kling-video-o3-pro-reference-to-video fails with the documented error_message, or succeeds."""
    row = await api.finished_row({"model": KLING, **body})
    assert row["error_message"] == error
    assert row["status"] == ("failed" if error else "succeeded")
    assert row["started_at"] is not None  # rules apply when the generation runs


OTHER_CASES: list[tuple[str, dict[str, Any], str | None]] = [
    ("omni ok", {"model": OMNI, "prompt": "a", "input_image": [EXAMPLE_IMAGE] * 7}, None),
    ("omni prompt required", {"model": OMNI}, "Field required"),
    (
        "omni 8 images",
        {"model": OMNI, "prompt": "a", "input_image": [EXAMPLE_IMAGE] * 8},
        rules.too_many_images(8, 7),
    ),
    (
        "omni 5 images with video",
        {"model": OMNI, "prompt": "a", "input_video": EXAMPLE_IMAGE, "input_image": [EXAMPLE_IMAGE] * 5},
        rules.too_many_images(5, 4),
    ),
    ("omni duration 16", {"model": OMNI, "prompt": "a", "duration": 16}, too_short(16)),
    (
        "omni bad mode",
        {"model": OMNI, "prompt": "a", "video_mode": "remix"},
        "Input should be 'edit' or 'reference'",
    ),
    ("t2v ok", {"model": T2V, "prompt": "A sunset timelapse over the ocean", "duration": 5}, None),
    ("t2v duration 7", {"model": T2V, "prompt": "a", "duration": 7}, "Input should be '5' or '10'"),
    ("t2v prompt required", {"model": T2V}, "Field required"),
    ("image ok", {"model": FLUX, "prompt": "a", "input_image": [EXAMPLE_IMAGE]}, None),
    ("image prompt required", {"model": FLUX}, "Field required"),
    (
        "image unreachable",
        {"model": FLUX, "prompt": "a", "input_image": [UNREACHABLE]},
        rules.forbidden(UNREACHABLE),
    ),
]


@pytest.mark.parametrize(
    ("body", "error"), [case[1:] for case in OTHER_CASES], ids=[c[0] for c in OTHER_CASES]
)
async def test_other_model_rules(api: Api, body: dict[str, Any], error: str | None) -> None:
    """The omni, text-to-video and image models apply their own rules at run time."""
    row = await api.finished_row(body)
    assert (row["status"], row["error_message"]) == ("failed" if error else "succeeded", error)


async def test_fetched_references_are_recorded(api: Api) -> None:
    """Every reference URL the model fetched is recorded, globally and per generation, in order."""
    start, other = EXAMPLE_IMAGE, EXAMPLE_IMAGE.replace("https://hub.oxen.ai", "http://mirror.example")
    row = await api.finished_row(
        {"model": KLING, "prompt": "a", "start_image_url": start, "input_image": [other, PNG_DATA_URI]}
    )
    assert row["status"] == "succeeded"
    assert api.emu.fetched_references == [start, other, PNG_DATA_URI]
    assert api.emu.generation(row["generation_id"]).fetched_references == [start, other, PNG_DATA_URI]


async def test_failed_fetch_records_only_successful_ones(api: Api) -> None:
    """URLs fetched before an unreachable one are recorded; the unreachable one is not."""
    row = await api.finished_row({"model": KLING, "prompt": "a", "input_image": [EXAMPLE_IMAGE, UNREACHABLE]})
    assert row["error_message"] == rules.forbidden(UNREACHABLE)
    assert api.emu.fetched_references == [EXAMPLE_IMAGE]


def test_long_urls_are_shortened_in_messages() -> None:
    """A huge data URI is not copied whole into error_message."""
    message = rules.forbidden("data:image/png;base64," + "A" * 10_000)
    assert len(message) < 250 and message.endswith("...")
