"""Everyday commands end to end against the emulator: `--only`, `ls`, `run --json`, cancelling a live run,
the budget line of `plan`, and the model wording of `plan` with a key."""

from __future__ import annotations

import asyncio
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from batchgen.emulator import Emulator, FaultConfig
from tests.e2e.conftest import CliResult, api_args, run_cli
from tests.e2e.test_run import MODEL, assert_all_verified, enqueues, results

PRODUCTS = ["lamp", "mug", "vase"]


def product_manifest(root: Path, *, takes: int = 2, name: str = "shop", **top: Any) -> Path:
    """3 products x `takes` jobs; the product is a matrix variable, the take another."""
    manifest = {
        "version": 1,
        "name": name,
        "model": MODEL,
        "defaults": {"aspect_ratio": "16:9", "duration": 5},
        "jobs": [
            {
                "name": "hero",
                "prompt": "A {product} on a table, take {take}",
                "matrix": {"product": PRODUCTS, "take": list(range(takes))},
            }
        ],
        "output": {"pattern": "{product}/{name}-{take}.mp4"},
        **top,
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path


def bodies_with(emu: Emulator, word: str) -> int:
    """Generations created for request bodies that mention `word`."""
    return sum(n for body, n in emu.counters.snapshot()["enqueued_by_body"].items() if word in body)


def keys_arg(emu: Emulator) -> list[str]:
    return ["--api-base", emu.base_url, "--api-key", emu.api_key]


def when_enqueued(emu: Emulator, count: int) -> asyncio.Event:
    """Set once the emulator has answered its `count`-th enqueue."""
    answered = asyncio.Event()
    emu.counters.listeners.append(
        lambda event, _: (
            answered.set()
            if event == "enqueue_answered" and emu.counters.generations_enqueued >= count
            else None
        )
    )
    return answered


async def test_run_only_then_a_plain_run_finishes_the_rest_without_paying_twice(
    emulator: Any, tmp_path: Path
) -> None:
    """`run --only product=lamp` submits the two lamp jobs only and leaves the other four pending (not
    set aside); the plain run after it submits exactly those four. `plan` and `status` take --only too."""
    emu = await emulator()
    manifest = product_manifest(tmp_path)
    planned = await run_cli("plan", str(manifest), "-o", "out", "--only", "product=lamp", cwd=tmp_path)
    assert planned.code == 0, planned.stderr
    assert "chosen by --only product=lamp: 2 of 6 planned jobs" in planned.stdout

    with_progress = [a for a in api_args(emu, "--only", "product=lamp") if a != "--no-progress"]
    lamp = await run_cli("run", str(manifest), "-o", "out", *with_progress, cwd=tmp_path)
    assert lamp.code == 0, lamp.stderr
    assert "out/shop: 2/2 done" in lamp.stderr and "4 other planned job(s)" in lamp.stderr
    # not a terminal: plain progress lines, with an ETA while work is left, and the run directory's spend
    assert re.search(r"^\[00:00:0\d\] 0/2 done · eta \? · in flight \d", lamp.stderr, re.M)
    assert (
        "] 2/2 done · in flight 0 · downloading 0 · failed 0 · retried 0 · $2.24 spent (run directory)\n"
        in (lamp.stderr)
    )
    assert (enqueues(emu), bodies_with(emu, "lamp")) == (2, 2)
    run_dir = tmp_path / "out" / "shop"
    status = await run_cli("status", "out/shop", cwd=tmp_path)
    assert status.code == 1 and "6 jobs · done 2 · pending 4" in status.stdout
    assert "superseded" not in status.stdout and "earlier version" not in status.stdout
    assert not (run_dir / "superseded").exists()
    only_lamp = await run_cli("status", "out/shop", "--only", "product=lamp", cwd=tmp_path)
    assert only_lamp.code == 0 and "2 jobs · done 2" in only_lamp.stdout
    rows = {r["output_path"]: r["state"] for r in results(run_dir)}
    assert sorted(rows.values()) == ["done", "done", "pending", "pending", "pending", "pending"]

    rest = await run_cli("run", str(manifest), "-o", "out", *api_args(emu), cwd=tmp_path)
    assert rest.code == 0, rest.stderr
    assert enqueues(emu) == 6 and bodies_with(emu, "lamp") == 2  # no lamp job was submitted again
    assert max(emu.counters.snapshot()["enqueued_by_body"].values()) == 1
    assert_all_verified(run_dir, emu, 6)


async def test_only_with_an_unknown_key_or_no_match_is_exit_2_and_nothing_is_sent(
    emulator: Any, tmp_path: Path
) -> None:
    """An unknown KEY names the keys there are; a filter that matches nothing says which values exist."""
    emu = await emulator()
    manifest = product_manifest(tmp_path)
    unknown = await run_cli(
        "run", str(manifest), "-o", "out", *api_args(emu, "--only", "prodcut=lamp"), cwd=tmp_path
    )
    assert unknown.code == 2
    assert "no job has a variable or field 'prodcut' (did you mean 'product'?)" in unknown.stderr
    assert "known: aspect_ratio, duration, index, key, model, name, product, prompt, replica, take" in (
        unknown.stderr
    )
    nothing = await run_cli(
        "run", str(manifest), "-o", "out", *api_args(emu, "--only", "product=sofa"), cwd=tmp_path
    )
    assert nothing.code == 2
    assert (
        "no job matches --only product=sofa (of 6 planned); values there are: product: lamp, mug, vase"
        in (nothing.stderr)
    )
    assert enqueues(emu) == 0 and not (tmp_path / "out").exists()
    planned = await run_cli("plan", str(manifest), "--only", "product=sofa", cwd=tmp_path)
    assert planned.code == 0 and "0 jobs" in planned.stdout and "no job matches" in planned.stderr


async def test_run_json_prints_one_summary_object_on_stdout(emulator: Any, tmp_path: Path) -> None:
    """`run --json`: stdout is exactly one JSON object (counts, spend, reason, run_dir, failures with
    their keys); the human lines stay on stderr."""
    emu = await emulator(faults=FaultConfig(generation_failure_rate=1.0))
    manifest = product_manifest(tmp_path, takes=1)
    ran = await run_cli(
        "run", str(manifest), "-o", "out", "--json", *api_args(emu, "--retries", "0"), cwd=tmp_path
    )
    assert ran.code == 1
    summary = json.loads(ran.stdout)
    assert ran.stdout.count("\n") == 1
    assert summary["exit_code"] == 1 and summary["reason"] == "incomplete" and not summary["complete"]
    assert summary["run_dir"] == "out/shop" and summary["jobs"] == 3
    assert summary["counts"] == {"failed": 3}
    assert Decimal(summary["committed_usd"]) == 0  # failed generations are not billed
    journal_keys = {r["key"] for r in results(tmp_path / "out" / "shop")}
    assert {f["key"] for f in summary["failures"]} == journal_keys
    assert all(f["state"] == "failed" and f["error"] for f in summary["failures"])
    assert "out/shop: 0/3 done" in ran.stderr

    bad = await run_cli(
        "run", str(manifest), "-o", "out", "--json", "--budget", "x", *api_args(emu), cwd=tmp_path
    )
    assert bad.code == 2
    assert json.loads(bad.stdout) == {
        "reason": "bad_input",
        "error": "--budget must be an amount in USD such as 150 or 49.90, got 'x'",
        "exit_code": 2,
    }


async def test_a_plan_budget_line_says_where_the_run_stops_and_the_run_agrees(
    emulator: Any, tmp_path: Path
) -> None:
    """`plan --budget 4` says it stops after 3 of 6 ($1.12 each); the run with that budget sends 3."""
    emu = await emulator()
    manifest = product_manifest(tmp_path)
    planned = await run_cli("plan", str(manifest), "-o", "out", "--budget", "4", *keys_arg(emu), cwd=tmp_path)
    assert planned.code == 0, planned.stderr
    assert (
        "budget $4.00 stops after 3 of 6 jobs to run: $3.36 spent by then; the next, #3 hero · mug · 1, would bring it to $4.48"
        in (planned.stdout)
    )
    ran = await run_cli("run", str(manifest), "-o", "out", *api_args(emu, "--budget", "4"), cwd=tmp_path)
    assert ran.code == 1 and "the budget was reached" in ran.stderr
    assert enqueues(emu) == 3
    again = await run_cli("plan", str(manifest), "-o", "out", "--budget", "6", *keys_arg(emu), cwd=tmp_path)
    assert (
        "budget $6.00 stops after 2 of 3 jobs to run: $5.60 spent by then (of which $3.36 already spent by this run directory)"
        in (again.stdout)
    )
    more = await run_cli("run", str(manifest), "-o", "out", *api_args(emu, "--budget", "6"), cwd=tmp_path)
    assert more.code == 1 and enqueues(emu) == 5


async def test_plan_with_a_key_reads_the_registry_and_calls_an_unknown_id_unknown(
    emulator: Any, tmp_path: Path
) -> None:
    """Offline, a model id missing from the shipped snapshots may exist: `plan` says to set the key. With a
    key the live registry is asked, and an id it does not know is unknown."""
    emu = await emulator()
    manifest = product_manifest(tmp_path, model="acme-video-9")
    offline = await run_cli("plan", str(manifest), cwd=tmp_path)
    assert offline.code == 2
    assert (
        "model: 'acme-video-9' is not among the shipped model snapshots: set OXEN_API_KEY to fetch its schema"
        in offline.stderr
    )
    online = await run_cli("plan", str(manifest), *keys_arg(emu), cwd=tmp_path)
    assert online.code == 2 and "model: unknown model 'acme-video-9'" in online.stderr
    assert emu.counters.snapshot()["requests"] == {"GET /api/ai/models/{model_id}": 1}


async def run_in_background(
    manifest: Path, emu: Emulator, tmp_path: Path, *extra: str
) -> asyncio.Task[CliResult]:
    return asyncio.create_task(
        run_cli("run", str(manifest), "-o", "out", *api_args(emu, *extra), cwd=tmp_path)
    )


async def settle(task: asyncio.Task[CliResult]) -> CliResult:
    async with asyncio.timeout(60):
        return await task


async def test_cancel_while_the_run_is_live_asks_it_to_stop_and_cancel(emulator: Any, tmp_path: Path) -> None:
    """`cancel` on a live run (no key needed): the running process stops submitting, cancels its 4
    in-flight generations itself, and exits 1 saying so; `ls` meanwhile says live without waiting."""
    emu = await emulator(time_scale=1.0)  # renders take minutes: surely in flight
    manifest = product_manifest(tmp_path, takes=4)  # 12 jobs, 4 at once
    answered = when_enqueued(emu, 4)
    run = await run_in_background(manifest, emu, tmp_path, "-j", "4")
    async with asyncio.timeout(30):
        await answered.wait()
    listed = await run_cli("ls", "out", "--json", cwd=tmp_path)
    assert listed.code == 0, listed.stderr
    entry = json.loads(listed.stdout)
    assert entry["live"] is True and entry["run_dir"] == "out/shop" and entry["sandbox"] is False

    cancelled = await run_cli("cancel", "out/shop", "--timeout", "30", cwd=tmp_path)
    assert cancelled.code == 0, cancelled.stderr
    assert "the run is live (pid" in cancelled.stderr
    assert cancelled.stdout.startswith("cancelled 4 in-flight generation(s)\n")
    finished = await settle(run)
    assert finished.code == 1
    assert "cancelled (`batchgen cancel`)" in finished.stderr
    assert sorted(g.status for g in emu.generations()) == ["cancelled"] * 4
    assert enqueues(emu) == 4  # nothing submitted after the request
    status = await run_cli("status", "out/shop", cwd=tmp_path)
    assert "cancelled 4 · pending 8" in status.stdout
    run_dir = tmp_path / "out" / "shop"
    assert not (run_dir / ".cancel-request.json").exists()


async def test_cancel_only_on_a_live_run_cancels_only_the_matching_generations(
    emulator: Any, tmp_path: Path
) -> None:
    """`cancel --only take=1` while live, 4 of 6 in flight: lamp-1 and mug-1 are cancelled, vase-1
    (pending) is never submitted, and the run goes on: vase-0 takes a freed slot. A plain cancel then
    stops the rest: 5 generations created, all cancelled."""
    emu = await emulator(time_scale=1.0)
    manifest = product_manifest(tmp_path, takes=2)  # lamp-0 lamp-1 mug-0 mug-1 vase-0 vase-1
    answered, fifth = when_enqueued(emu, 4), when_enqueued(emu, 5)
    run = await run_in_background(manifest, emu, tmp_path, "-j", "4")
    async with asyncio.timeout(30):
        await answered.wait()
    some = await run_cli("cancel", "out/shop", "--only", "take=1", "--timeout", "30", cwd=tmp_path)
    assert some.code == 0, some.stderr
    assert "asking it to take the 3 chosen job(s) out of the run" in some.stderr
    assert some.stdout.startswith("cancelled 2 in-flight generation(s)\n")
    async with asyncio.timeout(30):
        await fifth.wait()  # the run went on: vase-0 took a freed slot
    assert not run.done()
    rest = await run_cli("cancel", "out/shop", "--timeout", "30", cwd=tmp_path)
    assert rest.code == 0 and rest.stdout.startswith("cancelled 3 in-flight generation(s)\n")
    assert (await settle(run)).code == 1
    prompts = sorted(g.request["prompt"] for g in emu.generations())
    assert prompts == [
        f"A {p} on a table, take {t}"
        for p, t in [("lamp", 0), ("lamp", 1), ("mug", 0), ("mug", 1), ("vase", 0)]
    ]
    assert {g.status for g in emu.generations()} == {"cancelled"}
    status = await run_cli("status", "out/shop", cwd=tmp_path)
    assert "6 jobs · cancelled 5 · pending 1" in status.stdout


async def test_two_cancels_at_once_take_turns_and_each_reports_what_it_cancelled(
    emulator: Any, tmp_path: Path
) -> None:
    """Two `batchgen cancel` started together on a live run with 8 in flight: one asks the run and
    reports the 8 it cancelled; the other says it waits for that one, then finds nothing left in
    flight. Neither overwrites the other's request or removes its answer: 8 cancelled, as the provider
    says (before the turn, both could say "nothing is in flight" while the run cancelled 8)."""
    emu = await emulator(time_scale=1.0)  # renders take minutes: surely in flight
    manifest = product_manifest(tmp_path, takes=4)  # 12 jobs, 8 at once
    answered = when_enqueued(emu, 8)
    run = await run_in_background(manifest, emu, tmp_path, "-j", "8")
    async with asyncio.timeout(30):
        await answered.wait()
    # The run's cancels are held at the provider, so the first `cancel` surely still holds its turn when
    # the second starts: the second is started once the first cancel request has reached the emulator.
    emu.set_faults(
        slow_response_rate=1.0,
        slow_response_seconds=3.0,
        slow_response_routes=("DELETE /api/ai/queue/{generation_id}",),
    )
    cancelling = asyncio.Event()
    emu.counters.listeners.append(
        lambda event, entry: (
            cancelling.set() if event == "request" and entry.route.startswith("DELETE") else None
        )
    )
    first = asyncio.ensure_future(run_cli("cancel", "out/shop", "--timeout", "30", cwd=tmp_path))
    async with asyncio.timeout(30):
        await cancelling.wait()
    waiter = await run_cli("cancel", "out/shop", "--timeout", "30", cwd=tmp_path)  # while the first waits
    asker = await first
    assert asker.code == 0 and waiter.code == 0, (asker.stderr, waiter.stderr)
    assert asker.stdout.startswith("cancelled 8 in-flight generation(s)\n")
    assert "another `batchgen cancel` (pid" in waiter.stderr
    assert waiter.stdout == "nothing is in flight: there is nothing to cancel\n"
    assert (await settle(run)).code == 1
    assert sorted(g.status for g in emu.generations()) == ["cancelled"] * 8


async def test_cancel_of_a_run_whose_process_is_gone_is_done_offline(emulator: Any, tmp_path: Path) -> None:
    """A lock file naming a process that is gone (or one not holding it) is not a live run: `cancel`
    works from the journal as before; with nothing in flight it says so, without a key."""
    emu = await emulator(time_scale=1.0)
    manifest = product_manifest(tmp_path, takes=1)
    answered = when_enqueued(emu, 3)

    async def kill_when_enqueued(proc: asyncio.subprocess.Process) -> None:
        await answered.wait()
        proc.kill()

    await run_cli(
        "run", str(manifest), "-o", "out", *api_args(emu), cwd=tmp_path, on_start=kill_when_enqueued
    )
    lock = tmp_path / "out" / "shop" / ".lock"
    assert lock.read_text().strip().isdigit()  # the dead process' pid is still written there
    offline = await run_cli("cancel", "out/shop", *keys_arg(emu), cwd=tmp_path)
    assert offline.code == 0, offline.stderr
    assert "the run is live" not in offline.stderr
    assert offline.stdout.startswith("cancelled 3 in-flight generation(s)")
    again = await run_cli("cancel", "out/shop", cwd=tmp_path)
    assert again.code == 0 and again.stdout == "nothing is in flight: there is nothing to cancel\n"


async def test_ls_lists_every_run_directory_with_counts_spend_activity_and_sandbox(
    emulator: Any, tmp_path: Path
) -> None:
    """A real run, a sandbox run and a plain folder: `ls` lists the two runs (not the folder) with their
    counts, what each has spent (a sandbox run: nothing paid), the last activity and the sandbox flag."""
    emu = await emulator()
    manifest = product_manifest(tmp_path, takes=1)
    assert (await run_cli("run", str(manifest), "-o", "out", *api_args(emu), cwd=tmp_path)).code == 0
    sandbox = await run_cli(
        "run", str(manifest), "-o", "out", "--sandbox", "--no-progress", "--only", "product=mug", cwd=tmp_path
    )
    assert sandbox.code == 0, sandbox.stderr
    (tmp_path / "out" / "notes").mkdir()
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "out").rglob("*"))

    listed = await run_cli("ls", "out", cwd=tmp_path)
    assert listed.code == 0, listed.stderr
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "out").rglob("*")) == before  # nothing left
    lines = listed.stdout.splitlines()
    assert lines[0].split() == [
        "RUN",
        "DIR",
        "CAMPAIGN",
        "JOBS",
        "STATES",
        "SPENT",
        "LAST",
        "ACTIVITY",
        "SANDBOX",
        "LIVE",
    ]
    assert re.match(
        r"out/shop +shop +3 +done 3 +\$3\.36 +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d +no +-$", lines[1]
    )
    assert re.match(
        r"out/shop\.sandbox +shop +3 +done 1 · pending 2 +sandbox: nothing paid +\S+ +yes +-$", lines[2]
    )
    assert len(lines) == 3
    as_json = [
        json.loads(line) for line in (await run_cli("ls", "out", "--json", cwd=tmp_path)).stdout.splitlines()
    ]
    assert [(r["run_dir"], r["counts"], r["committed_usd"], r["sandbox"], r["live"]) for r in as_json] == [
        ("out/shop", {"done": 3}, "3.36", False, False),  # as billed: the history was read
        ("out/shop.sandbox", {"done": 1, "pending": 2}, None, True, False),
    ]
    missing = await run_cli("ls", "nowhere", cwd=tmp_path)
    assert missing.code == 2 and "nowhere is not a directory" in missing.stderr
