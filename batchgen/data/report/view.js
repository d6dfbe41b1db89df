// Filters, grouping and sort; picks and their export; the view kept in the URL's hash.

// ---------------------------------------------------------------- filters
const stateSelect = $("state-filter");
const groupSelect = $("group-by");
const stateCounts = new Map();
for (const c of CARDS) stateCounts.set(c.state, (stateCounts.get(c.state) || 0) + 1);
function option(select, value, text) {
  const o = el("option", "", text);
  o.value = value;
  select.append(o);
}
option(stateSelect, "", "all (" + CARDS.length + ")");
if (failures.length) option(stateSelect, "@failures", "failed + invalid (" + failures.length + ")");
for (const s of [...stateCounts.keys()].sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : 1))) {
  option(stateSelect, s, s + " (" + stateCounts.get(s) + ")");
}
if (!MONEY) $("sort").querySelector('option[value="cost"]').remove();

function valueOf(c, name) {
  if (name === JOB) return c.name;
  for (const [k, v] of c.vars) if (k === name) return v;
  return undefined;
}
// One select per filter the page data lists (report_view.py: the job name and each variable that
// varies, a variable that follows another one to one folded into it). [name, select, labels].
const axes = [];
for (const f of H.filters) {
  const wrap = el("label", "", f.label + " ");
  const select = el("select");
  if (f.name === JOB) select.id = "job-filter";
  else { select.className = "var-filter"; select.dataset.var = f.name; }
  option(select, "", "all");
  const labels = new Map();
  for (const [value, text, n] of f.options) {
    option(select, value, text + " (" + n + ")");
    labels.set(value, text);
  }
  select.addEventListener("change", apply);
  wrap.append(select);
  $("var-filters").append(wrap);
  axes.push([f.name, select, labels]);
  option(groupSelect, f.name, f.label);
}
groupSelect.value = H.group_by || "";

function matches(c, f) {
  if (f.state === "@failures" ? !FAILED.has(c.state) : f.state && c.state !== f.state) return false;
  if (f.onlyPicked && !picks.has(c.key)) return false;
  for (const [name, value] of f.axes) if (valueOf(c, name) !== value) return false;
  return !f.q || haystacks.get(c.key).includes(f.q);
}

const SORTS = {
  manifest: () => 0,
  name: (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.replica - b.replica),
  state: (a, b) => rank(a.state) - rank(b.state),
  cost: (a, b) => (b.cost_n ?? -1) - (a.cost_n ?? -1),
};

function currentFilters() {
  return {
    state: stateSelect.value,
    q: $("search").value.trim().toLowerCase(),
    onlyPicked: $("only-picked").checked,
    axes: axes.filter(([, s]) => s.value !== "").map(([name, s]) => [name, s.value]),
  };
}

// The visible cards in groups of the chosen variable, groups in the order of its values (the
// manifest's), each card in the chosen sort within its group.
function grouped(cards) {
  const axis = axes.find(([name]) => name === groupSelect.value);
  if (!axis) return [[null, cards]];
  const groups = new Map([...axis[2].keys()].map((v) => [v, []]));
  const none = [];
  for (const c of cards) {
    (groups.get(valueOf(c, axis[0])) || none).push(c);
  }
  const out = [...groups].filter(([, list]) => list.length)
    .map(([value, list]) => [label(axis[0]) + ": " + axis[2].get(value), list]);
  if (none.length) out.push([label(axis[0]) + ": (none)", none]);
  return out;
}

let visible = [];
function apply() {
  const f = currentFilters();
  const by = SORTS[$("sort").value] || SORTS.manifest;
  const failuresFirst = $("failures-first").checked;
  const sorted = CARDS.filter((c) => matches(c, f)).sort((a, b) =>
    (failuresFirst ? FAILED.has(b.state) - FAILED.has(a.state) : 0) || by(a, b) || a.index - b.index);
  const frag = document.createDocumentFragment();
  visible = [];
  for (const [title, list] of grouped(sorted)) {
    if (title !== null) {
      const head = el("h2", "group-head", title + " ");
      head.append(el("span", "n", "(" + list.length + ")"));
      frag.append(head);
    }
    for (const c of list) frag.append(nodes.get(c.key));
    visible.push(...list);
  }
  $("grid").replaceChildren(frag);
  $("empty").hidden = visible.length > 0;
  $("shown").textContent = visible.length + " of " + CARDS.length + " shown";
  const active = (f.state ? 1 : 0) + (f.q ? 1 : 0) + (f.onlyPicked ? 1 : 0) + f.axes.length;
  $("active").textContent = active ? "· " + active + " on" : "";
  for (const b of countButtons) b.setAttribute("aria-pressed", String(stateSelect.value === b.dataset.state));
  writeHash();
}

function resetFilters() {
  stateSelect.value = "";
  $("search").value = "";
  $("only-picked").checked = false;
  for (const [, select] of axes) select.value = "";
  apply();
}

let typing = 0;
$("search").addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(apply, 120); });
for (const id of ["state-filter", "group-by", "sort", "failures-first", "only-picked"]) {
  $(id).addEventListener("change", apply);
}
// On a phone the filters fold away under one line, so the first screen shows the first video.
$("controls").open = !phone.matches;
phone.addEventListener("change", () => { $("controls").open = !phone.matches; });

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
  if (on && !PICKABLE.has(key)) return;
  if (on) picks.add(key); else picks.delete(key);
  const card = nodes.get(key);
  card.classList.toggle("picked", on);
  const box = card.querySelector(".pick-box");
  if (box) box.checked = on;
  savePicks();
  showPicks();
  if ($("only-picked").checked) apply(); else writeHash();
}
function csvField(value) {
  let s = value === null || value === undefined ? "" : String(value);
  if (/^[=+\-@\t\r]/.test(s)) s = "'" + s;  // a spreadsheet must not run it as a formula
  return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
}
// One row per pick: the job, its file, then the variables every job shares and its own.
function picksCsv() {
  const chosen = CARDS.filter((c) => picks.has(c.key));
  const shared = H.constants.filter(([name]) => name !== JOB);
  const names = [...new Set(chosen.flatMap((c) => c.vars.map((kv) => kv[0])))];
  const rows = [["key", "title", "path", "name", "replica", "state", "generation_id",
    ...shared.map(([name]) => name), ...names]];
  for (const c of chosen) {
    rows.push([c.key, c.title, c.path, c.name, c.replica, c.state, c.generation_id,
      ...shared.map(([, value]) => value), ...names.map((n) => valueOf(c, n))]);
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
$("pick-float").addEventListener("click", () => {
  $("controls").open = true;
  $("bar").scrollIntoView();
  $("export").focus();
});

// ---------------------------------------------------------------- the view in the URL
// `#state=failed&var.product=mug&q=coast&group=product&picks=3f9a1c7e5b2d,…`: a link to this view,
// restored when the page opens with it. Picks go by the first 12 characters of their key.
const PICK_CHARS = 12;
let written = null;
function hashOf() {
  const f = currentFilters();
  const parts = [];
  const add = (k, v) => parts.push(encodeURIComponent(k) + "=" + encodeURIComponent(v));
  if (f.state) add("state", f.state);
  for (const [name, value] of f.axes) add(name === JOB ? "job" : "var." + name, value);
  if ($("search").value.trim()) add("q", $("search").value.trim());
  if (groupSelect.value !== (H.group_by || "")) add("group", groupSelect.value);
  if ($("sort").value !== "manifest") add("sort", $("sort").value);
  if (!$("failures-first").checked) add("failures_first", "0");
  if (f.onlyPicked) add("only_picked", "1");
  if (picks.size) add("picks", [...picks].map((k) => k.slice(0, PICK_CHARS)).join(","));
  return parts.join("&");
}
function writeHash() {
  const hash = hashOf();
  if (hash === location.hash.slice(1)) return;
  written = hash;
  const url = location.href.split("#")[0] + (hash ? "#" + hash : "");
  try { history.replaceState(null, "", url); } catch (e) { location.replace(url); }
}
function setControl(control, value) {
  if (control.tagName !== "SELECT" || [...control.options].some((o) => o.value === value)) control.value = value;
}
function readHash() {
  const hash = location.hash.slice(1);
  if (!hash || /^card-\d+$/.test(hash)) return false;  // none, or a failure's link to its card
  const got = new Map();
  for (const part of hash.split("&")) {
    const at = part.indexOf("=");
    try {
      if (at > 0) got.set(decodeURIComponent(part.slice(0, at)), decodeURIComponent(part.slice(at + 1)));
    } catch (e) { /* a mangled part: left out */ }
  }
  setControl(stateSelect, got.get("state") || "");
  for (const [name, select] of axes) setControl(select, got.get(name === JOB ? "job" : "var." + name) || "");
  $("search").value = got.get("q") || "";
  setControl(groupSelect, got.has("group") ? got.get("group") : H.group_by || "");
  setControl($("sort"), got.get("sort") || "manifest");
  $("failures-first").checked = got.get("failures_first") !== "0";
  $("only-picked").checked = got.get("only_picked") === "1";
  if (got.has("picks")) {
    const wanted = got.get("picks").split(",").filter((p) => p.length >= 6);
    for (const k of [...picks]) setPick(k, false);
    for (const k of PICKABLE) if (wanted.some((p) => k.startsWith(p))) setPick(k, true);
  }
  return true;
}
window.addEventListener("hashchange", () => {
  if (location.hash.slice(1) !== written && readHash()) apply();
});

// For scripts and tests: read-only views and the same actions the controls use.
window.batchgenReport = Object.freeze({
  csv: picksCsv,
  lastExport: () => lastExport,
  picks: () => CARDS.filter((c) => picks.has(c.key)).map((c) => c.key),
  visibleKeys: () => visible.map((c) => c.key),
  loadAll: () => { keepLoaded = true; for (const card of nodes.values()) mountMedia(card); },
});

readHash();
showPicks();
apply();
