
(() => {
"use strict";
const DATA = JSON.parse(document.getElementById("batchgen-data").textContent);
const H = DATA.header;
const CARDS = DATA.cards;
const FAILED = new Set(["failed", "invalid", "unverified"]);
const RANK = {failed: 0, invalid: 1, unverified: 2, cancelled: 3, pending: 4, submitting: 5, queued: 6,
  processing: 7, succeeded: 8, downloading: 9, done: 10};
const MAX_VAR_VALUES = 200;
const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}
function stateClass(state) { return /^[a-z]+$/.test(state) ? state : "other"; }  // a CSS token, never more
function rank(state) { return Object.prototype.hasOwnProperty.call(RANK, state) ? RANK[state] : 5; }

// ---------------------------------------------------------------- picks (kept per campaign)
const STORE = "batchgen-report-picks:" + H.campaign;
const KEYS = new Set(CARDS.map((c) => c.key));
const picks = new Set();
try {
  const saved = JSON.parse(localStorage.getItem(STORE) || "[]");
  if (Array.isArray(saved)) for (const k of saved) if (KEYS.has(k)) picks.add(k);
} catch (e) { /* no storage (private mode, quota): picks live for this page only */ }
function savePicks() {
  try { localStorage.setItem(STORE, JSON.stringify([...picks])); } catch (e) { /* see above */ }
}

// ---------------------------------------------------------------- header
document.title = H.campaign + " · batchgen report";
$("campaign").textContent = H.campaign;
if (H.sandbox) $("badges").append(el("span", "badge sandbox", "sandbox: emulator, nothing paid"));
const MODELS = [...new Set(CARDS.map((c) => c.model).filter(Boolean))];
$("meta").textContent = (H.ran ? "Ran " + H.ran[0] + (H.ran[1] ? " → " + H.ran[1] : "") + " · " : "") +
  "as of " + H.generated_at + " · " + CARDS.length + " jobs" +
  (MODELS.length === 1 ? " · " + MODELS[0] : "") + (H.api_origin ? " · API " + H.api_origin : "");
const countButtons = [];
for (const [state, n] of H.counts) {
  const b = el("button", "count", state + " " + n);
  b.type = "button";
  b.dataset.state = state;
  b.setAttribute("aria-pressed", "false");
  b.addEventListener("click", () => {
    const select = $("state-filter");
    select.value = select.value === state ? "" : state;
    apply();
  });
  countButtons.push(b);
  $("counts").append(b);
}
$("spend").append(el("span", "", "Spent " + H.spend + (H.budget ? " of " + H.budget + " budget" : "")));
if (H.budget_n && H.spend_n !== null) {
  const m = el("meter");
  m.min = 0; m.max = H.budget_n; m.high = H.budget_n * 0.9; m.value = Math.min(H.spend_n, H.budget_n);
  m.title = Math.round(100 * H.spend_n / H.budget_n) + "% of the budget";
  $("spend").append(m);
}
if (H.spend_note) {
  const note = el("span", "billed", H.spend_note);
  note.title = "every generation this run directory made, superseded ones included: what the provider's history billed where it was read, else the quote";
  $("spend").append(note);
}
const failures = CARDS.filter((c) => FAILED.has(c.state));
if (failures.length) {
  $("failures").hidden = false;
  $("failures-title").textContent = failures.length + (failures.length === 1 ? " job needs" : " jobs need") +
    " a look (failed, invalid or unverified)";
  for (const c of failures) {
    const li = el("li");
    const a = el("a", "", c.title);
    a.href = "#card-" + c.index;
    a.addEventListener("click", () => { if (!nodes.get(c.key).isConnected) resetFilters(); });
    li.append(a, el("span", "", " · " + c.state + " "));
    if (c.error) li.append(el("span", "err", "— " + c.error));
    $("failure-list").append(li);
  }
}

// ---------------------------------------------------------------- cards
const lazy = "IntersectionObserver" in window ? new IntersectionObserver(onSight, {rootMargin: "800px 0px"}) : null;
let keepLoaded = !lazy;
const nodes = new Map();
const haystacks = new Map();
const cardOf = new Map();  // card element -> its data

// A card's <video> or <img> exists only while the card is near the viewport: thousands of media
// elements (each with its controls and, once loaded, a decoder) would make the page crawl.
function mountMedia(card) {
  const c = cardOf.get(card);
  const box = card.firstChild;
  if (!c.href || box.firstChild) return;
  let media;
  if (c.media === "image") {
    media = el("img");
    media.alt = c.title;
    media.decoding = "async";
  } else {
    media = el("video");
    media.controls = true; media.muted = true; media.defaultMuted = true; media.loop = true;
    media.playsInline = true;
    media.preload = "metadata";
    media.setAttribute("aria-label", c.title);
    media.addEventListener("mouseenter", () => media.play().catch(() => {}));
    media.addEventListener("mouseleave", () => media.pause());
  }
  media.src = c.href;
  box.append(media);
}
function unmountMedia(card) {
  const media = card.firstChild.firstChild;
  if (!media || !cardOf.get(card).href) return;
  if (media.tagName === "VIDEO") {
    media.pause();
    media.removeAttribute("src");
    media.load();  // releases the player now rather than at garbage collection
  }
  media.remove();
}
function onSight(entries) {
  for (const e of entries) {
    if (e.isIntersecting) mountMedia(e.target);
    else if (!keepLoaded) unmountMedia(e.target);
  }
}

function fact(dl, term, value, title) {
  if (value === null || value === undefined || value === "") return;
  dl.append(el("dt", "", term));
  const dd = el("dd", "", value);
  if (title) dd.title = title;
  dl.append(dd);
}

// An unverified result: paid, its bytes failed verification and are kept aside. Never a player
// (they may not play); a link to the kept file, and what to do about it.
function keptNote(c) {
  const note = el("div", "nofile kept", "not verified: its bytes failed verification and are kept at ");
  if (c.kept_href) {
    const a = el("a", "", c.kept);
    a.href = c.kept_href;
    a.target = "_blank";
    a.rel = "noopener";
    note.append(a);
  } else {
    note.append(el("span", "", c.kept));
  }
  note.append(el("span", "", " · `batchgen unverified` to accept them or fetch again"));
  return note;
}

function buildCard(c) {
  const card = el("article", "card " + stateClass(c.state));
  card.id = "card-" + c.index;
  card.dataset.key = c.key;
  card.dataset.state = c.state;
  const box = el("div", "media");
  if (c.kept) box.append(keptNote(c));
  else if (!c.href) box.append(el("div", "nofile", "no file (" + c.state + ")"));
  const body = el("div", "body");
  const row = el("div", "row");
  const pick = el("label", "pick");
  const box2 = el("input");
  box2.type = "checkbox";
  box2.className = "pick-box";
  box2.checked = picks.has(c.key);
  box2.addEventListener("change", () => setPick(c.key, box2.checked));
  pick.append(box2, el("span", "", "Pick"));
  row.append(pick, el("span", "state " + stateClass(c.state), c.state));
  if (c.cost) row.append(el("span", "cost", c.cost));
  const title = el("h2", "name", c.title);
  title.title = "job " + c.name + ", replica " + c.replica + ", key " + c.key;
  body.append(row, title);
  if (c.vars.length) {
    const ul = el("ul", "vars");
    for (const [k, v, shortened] of c.vars) {
      const li = el("li");
      const value = el("span", "v", v);
      if (shortened) value.title = shortened;
      li.append(el("span", "k", k + " "), value);
      ul.append(li);
    }
    body.append(ul);
  }
  if (c.prompt) {
    const p = el("p", "prompt", c.prompt);
    p.title = "click to expand";
    p.addEventListener("click", () => p.classList.toggle("open"));
    body.append(p);
  }
  if (c.error) body.append(el("p", "error", c.error));
  const dl = el("dl", "facts");
  fact(dl, "format", [c.aspect, c.duration].filter(Boolean).join(" · "));
  fact(dl, "billed", c.billed, "what the provider's history says was charged (the quote is above)");
  fact(dl, "finished", c.finished_at);
  fact(dl, "generation", c.generation_id);
  body.append(dl);
  const more = el("details", "more");
  more.append(el("summary", "", "key, sha256, file"));
  const dl2 = el("dl", "facts");
  fact(dl2, "key", c.key);
  fact(dl2, "sha256", c.sha256);
  fact(dl2, "kept", c.kept);
  fact(dl2, "model", c.model);
  if (c.href) {
    dl2.append(el("dt", "", "file"));
    const dd = el("dd");
    const a = el("a", "", c.path);
    a.href = c.href;
    a.target = "_blank";
    a.rel = "noopener";
    dd.append(a);
    dl2.append(dd);
  } else if (c.path) {
    fact(dl2, "file", c.path);
  }
  more.append(dl2);
  body.append(more);
  card.append(box, body);
  if (picks.has(c.key)) card.classList.add("picked");
  return card;
}

for (const c of CARDS) {
  const card = buildCard(c);
  nodes.set(c.key, card);
  cardOf.set(card, c);
  haystacks.set(c.key, [c.title, c.prompt, c.key, c.generation_id, c.error, c.path, c.kept, c.state,
    ...c.vars.map((kv) => kv[1])].filter(Boolean).join("\n").toLowerCase());
  if (lazy) lazy.observe(card);
}

// ---------------------------------------------------------------- filters and sort
const stateSelect = $("state-filter");
const stateCounts = new Map();
for (const c of CARDS) stateCounts.set(c.state, (stateCounts.get(c.state) || 0) + 1);
function option(select, value, label) {
  const o = el("option", "", label);
  o.value = value;
  select.append(o);
}
option(stateSelect, "", "all (" + CARDS.length + ")");
if (failures.length) option(stateSelect, "@failures", "failed + invalid (" + failures.length + ")");
for (const s of [...stateCounts.keys()].sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : 1))) {
  option(stateSelect, s, s + " (" + stateCounts.get(s) + ")");
}

// A select for the job name and one per variable, each when it has 2..MAX_VAR_VALUES distinct
// values, listed in manifest order. An axis is [select, value of a card]; `null` means "all".
function valueOf(c, name) {
  for (const [k, v] of c.vars) if (k === name) return v;
  return undefined;
}
const names = new Map();
const vars = new Map();
for (const c of CARDS) {
  names.set(c.name, (names.get(c.name) || 0) + 1);
  for (const [k, v] of c.vars) {
    if (!vars.has(k)) vars.set(k, new Map());
    vars.get(k).set(v, (vars.get(k).get(v) || 0) + 1);
  }
}
const axes = [];
function addAxis(label, values, get, setup) {
  if (values.size < 2 || values.size > MAX_VAR_VALUES) return;
  const wrap = el("label", "", label + " ");
  const select = el("select");
  setup(select);
  option(select, "", "all");
  for (const [v, n] of values) option(select, v, v + " (" + n + ")");
  select.addEventListener("change", apply);
  wrap.append(select);
  $("var-filters").append(wrap);
  axes.push([select, get]);
}
addAxis("job", names, (c) => c.name, (s) => { s.id = "job-filter"; });
for (const [name, values] of vars) {
  addAxis(name, values, (c) => valueOf(c, name), (s) => { s.className = "var-filter"; s.dataset.var = name; });
}

function matches(c, f) {
  if (f.state === "@failures" ? !FAILED.has(c.state) : f.state && c.state !== f.state) return false;
  if (f.onlyPicked && !picks.has(c.key)) return false;
  for (const [get, value] of f.axes) if (get(c) !== value) return false;
  return !f.q || haystacks.get(c.key).includes(f.q);
}

const SORTS = {
  manifest: () => 0,
  name: (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.replica - b.replica),
  state: (a, b) => rank(a.state) - rank(b.state),
  cost: (a, b) => (b.cost_n ?? -1) - (a.cost_n ?? -1),
};

let visible = [];
function apply() {
  const f = {
    state: stateSelect.value,
    q: $("search").value.trim().toLowerCase(),
    onlyPicked: $("only-picked").checked,
    axes: axes.filter(([s]) => s.value !== "").map(([s, get]) => [get, s.value]),
  };
  const by = SORTS[$("sort").value] || SORTS.manifest;
  const failuresFirst = $("failures-first").checked;
  visible = CARDS.filter((c) => matches(c, f)).sort((a, b) =>
    (failuresFirst ? FAILED.has(b.state) - FAILED.has(a.state) : 0) || by(a, b) || a.index - b.index);
  const frag = document.createDocumentFragment();
  for (const c of visible) frag.append(nodes.get(c.key));
  $("grid").replaceChildren(frag);
  $("empty").hidden = visible.length > 0;
  $("shown").textContent = visible.length + " of " + CARDS.length + " shown";
  for (const b of countButtons) b.setAttribute("aria-pressed", String(stateSelect.value === b.dataset.state));
}

function resetFilters() {
  stateSelect.value = "";
  $("search").value = "";
  $("only-picked").checked = false;
  for (const [select] of axes) select.value = "";
  apply();
}

let typing = 0;
$("search").addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(apply, 120); });
for (const id of ["state-filter", "sort", "failures-first", "only-picked"]) $(id).addEventListener("change", apply);

// ---------------------------------------------------------------- picking and export
function showPicks() {
  const n = picks.size;
  $("pick-count").textContent = n + " picked";
  $("pick-float").textContent = n + " picked · export";
  $("pick-float").hidden = n === 0;
  $("export").disabled = n === 0;
  $("clear-picks").disabled = n === 0;
}
function setPick(key, on) {
  if (on) picks.add(key); else picks.delete(key);
  const card = nodes.get(key);
  card.classList.toggle("picked", on);
  card.querySelector(".pick-box").checked = on;
  savePicks();
  showPicks();
  if ($("only-picked").checked) apply();
}
function csvField(value) {
  let s = value === null || value === undefined ? "" : String(value);
  if (/^[=+\-@\t\r]/.test(s)) s = "'" + s;  // a spreadsheet must not run it as a formula
  return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
}
function picksCsv() {
  const chosen = CARDS.filter((c) => picks.has(c.key));
  const names = [...new Set(chosen.flatMap((c) => c.vars.map((kv) => kv[0])))];
  const rows = [["key", "title", "path", "name", "replica", "state", "generation_id", ...names]];
  for (const c of chosen) {
    rows.push([c.key, c.title, c.path, c.name, c.replica, c.state, c.generation_id,
      ...names.map((n) => valueOf(c, n))]);
  }
  return rows.map((r) => r.map(csvField).join(",")).join("\n") + "\n";
}
let lastExport = null;
function exportPicks() {
  const text = picksCsv();
  const filename = (H.campaign.replace(/[^A-Za-z0-9._-]+/g, "_") || "report") + "-picks.csv";
  const url = URL.createObjectURL(new Blob([text], {type: "text/csv;charset=utf-8"}));
  const a = el("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
  lastExport = {filename, text};
}
$("export").addEventListener("click", exportPicks);
$("clear-picks").addEventListener("click", () => { for (const k of [...picks]) setPick(k, false); });

// For scripts and tests: read-only views and the same actions the controls use.
window.batchgenReport = Object.freeze({
  csv: picksCsv,
  lastExport: () => lastExport,
  picks: () => CARDS.filter((c) => picks.has(c.key)).map((c) => c.key),
  visibleKeys: () => visible.map((c) => c.key),
  loadAll: () => { keepLoaded = true; for (const card of nodes.values()) mountMedia(card); },
});

showPicks();
apply();
})();
