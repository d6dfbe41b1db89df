"""GET /api/ai/generations (paged, with costs) and GET /api/ai/generations/{id}."""

from __future__ import annotations

from typing import Any

import pytest

from .support import FLUX, SLOW_VIDEO, Api, image, video

ROW_EXTRA = {
    "cost",
    "target_namespace",
    "target_repo",
    "target_directory",
    "user_id",
    "user_image",
    "username",
}


async def test_paging_fields(api: Api) -> None:
    """count, page_number, page_size, total_entries, total_pages describe the page; newest first."""
    ids = await api.enqueue(image(num_generations=4)) + await api.enqueue(image(num_generations=3))
    await api.emu.wait_idle()
    status, page1 = await api.request("GET", "/api/ai/generations", params={"page_size": "3"})
    assert status == 200
    assert (page1["count"], page1["page_number"], page1["page_size"]) == (3, 1, 3)
    assert (page1["total_entries"], page1["total_pages"]) == (7, 3)
    _, page3 = await api.request("GET", "/api/ai/generations", params={"page_size": "3", "page": "3"})
    assert page3["count"] == 1
    seen = [row["generation_id"] for row in page1["generations"]] + [
        r["generation_id"] for r in page3["generations"]
    ]
    assert seen[:3] == ids[::-1][:3] and seen[3] == ids[0]


async def test_default_page_size_is_50(api: Api) -> None:
    """Without paging params: page 1, page_size 50."""
    _, payload = await api.request("GET", "/api/ai/generations")
    assert (payload["page_number"], payload["page_size"], payload["count"]) == (1, 50, 0)
    assert (payload["total_entries"], payload["total_pages"], payload["total_cost"]) == (0, 0, None)


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"page_size": "0"}, "page_size must be an integer between 1 and 1000"),
        ({"page_size": "1001"}, "page_size must be an integer between 1 and 1000"),
        ({"page_size": "ten"}, "page_size must be an integer between 1 and 1000"),
        ({"page": "0"}, "page must be an integer >= 1"),
    ],
)
async def test_bad_paging_is_400(api: Api, params: dict[str, str], detail: str) -> None:
    """page < 1 or page_size outside 1-1000 is 400 invalid_params."""
    status, payload = await api.request("GET", "/api/ai/generations", params=params)
    assert status == 400
    assert payload["error"]["detail"] == detail


async def test_page_size_1000_is_accepted(api: Api) -> None:
    """page_size=1000 is the documented maximum."""
    status, payload = await api.request("GET", "/api/ai/generations", params={"page_size": "1000"})
    assert (status, payload["page_size"]) == (200, 1000)


async def test_rows_carry_cost_and_target_fields(make_api: Any) -> None:
    """Rows: the queue row plus cost (decimal string once charged, else null) and target/user fields."""
    api = await make_api(latency=SLOW_VIDEO)
    ok = await api.finished_row(image())
    failed = await api.finished_row({"model": FLUX})
    active = await api.enqueue_one(video())
    _, payload = await api.request("GET", "/api/ai/generations")
    rows = {row["generation_id"]: row for row in payload["generations"]}
    assert rows[ok["generation_id"]]["cost"] == "0.05"
    assert rows[failed["generation_id"]]["cost"] is None
    assert rows[active]["cost"] is None
    row = rows[ok["generation_id"]]
    assert row.keys() >= ROW_EXTRA | {"generation_id", "model_name", "status", "media_type", "prompt"}
    assert (row["target_namespace"], row["target_repo"], row["target_directory"]) == (
        "emulator-user",
        "ai-generations",
        FLUX,
    )
    assert row["username"] == "emulator-user"
    assert payload["total_cost"] == "0.05"


async def test_total_cost_sums_the_filter_set(api: Api) -> None:
    """total_cost is the sum over every matching row (all pages), as a decimal string."""
    await api.enqueue(image(num_generations=3))
    await api.enqueue(video(duration=10))
    await api.emu.wait_idle()
    _, everything = await api.request("GET", "/api/ai/generations", params={"page_size": "1"})
    assert everything["total_cost"] == "2.39"  # 3 x 0.05 + 10 s x 0.224
    _, videos = await api.request("GET", "/api/ai/generations", params={"media_type": "video"})
    assert videos["total_cost"] == "2.24"


async def test_filters_apply_to_history(api: Api) -> None:
    """status/model filters narrow the history; without status every status is listed."""
    await api.finished_row(image())
    await api.finished_row({"model": FLUX})
    _, failed = await api.request("GET", "/api/ai/generations", params={"status": "failed"})
    _, everything = await api.request("GET", "/api/ai/generations", params={"model": FLUX})
    assert failed["total_entries"] == 1
    assert everything["total_entries"] == 2


async def test_generation_details(api: Api) -> None:
    """GET /api/ai/generations/{id} wraps the row: {"generation": row, "status": "success", ...}."""
    row = await api.finished_row(image())
    status, payload = await api.request("GET", f"/api/ai/generations/{row['generation_id']}")
    assert status == 200
    assert (payload["status"], payload["status_message"]) == ("success", "resource_found")
    assert payload["generation"]["generation_id"] == row["generation_id"]
    assert payload["generation"]["cost"] == "0.05"
    assert payload["generation"]["result_url"].startswith(api.emu.base_url)


async def test_generation_details_404(api: Api) -> None:
    """An unknown id is 404 with the resource_not_found envelope."""
    status, payload = await api.request("GET", "/api/ai/generations/00000000-0000-4000-8000-000000000000")
    assert status == 404
    assert payload["status_message"] == "resource_not_found"
