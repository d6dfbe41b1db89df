// The page's data, its header and a card per job. report_html.py wraps this file and view.js (the
// filters, grouping, picks and the URL) in one strict function: they share its names.
const DATA = JSON.parse(document.getElementById("batchgen-data").textContent);
const H = DATA.header;
const CARDS = DATA.cards;
const MONEY = H.money !== false;  // a report without money has no amount in its data at all
const FAILED = new Set(["failed", "invalid", "unverified"]);
const RANK = {failed: 0, invalid: 1, unverified: 2, cancelled: 3, pending: 4, submitting: 5, queued: 6,
  processing: 7, succeeded: 8, downloading: 9, done: 10};
const JOB = "name";  // the filter by job name goes by the built-in variable's name
const $ = (id) => document.getElementById(id);
const phone = window.matchMedia("(max-width: 600px)");

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}
function stateClass(state) { return /^[a-z]+$/.test(state) ? state : "other"; }  // a CSS token, never more
function rank(state) { return Object.prototype.hasOwnProperty.call(RANK, state) ? RANK[state] : 5; }
function label(name) { return name === JOB ? "job" : name; }
function chip(tag, key, value) {
  const item = el(tag);
  item.append(el("span", "k", key + " "), el("span", "v", value));
  return item;
}

// ---------------------------------------------------------------- picks (kept per campaign)
const STORE = "batchgen-report-picks:" + H.campaign;
const PICKABLE = new Set(CARDS.filter((c) => c.pickable).map((c) => c.key));
const picks = new Set();
try {
  const saved = JSON.parse(localStorage.getItem(STORE) || "[]");
  if (Array.isArray(saved)) for (const k of saved) if (PICKABLE.has(k)) picks.add(k);
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
if (MONEY) {
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
} else {
  $("spend").hidden = true;
}
for (const [name, value, shortened] of H.constants) {
  const item = chip("li", label(name), value);
  if (shortened) item.lastChild.title = shortened;
  $("constants").append(item);
}
$("constants").hidden = H.constants.length === 0;
const failures = CARDS.filter((c) => FAILED.has(c.state));
if (failures.length) {
  $("failures").hidden = false;
  $("failures").open = !phone.matches;  // on a phone the first screen is for the first video
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

// ---------------------------------------------------------------- media
const lazy = "IntersectionObserver" in window ? new IntersectionObserver(onSight, {rootMargin: "800px 0px"}) : null;
let keepLoaded = !lazy;
const nodes = new Map();
const cardOf = new Map();  // card element -> its data
const broken = new Map();  // key -> why its file cannot be shown (kept: a remount shows the words again)
const MEDIA_ERRORS = {1: "its loading was stopped", 2: "it could not be read",
  3: "it could not be decoded", 4: "it is not a format this browser can decode (or it is missing)"};

// A card's <video> or <img> exists only while the card is near the viewport: thousands of media
// elements (each with its controls and, once loaded, a decoder) would make the page crawl.
function mountMedia(card) {
  const c = cardOf.get(card);
  const box = card.firstChild;
  if (!c.href || box.firstChild) return;
  if (broken.has(c.key)) { box.append(brokenNote(c)); return; }
  let media;
  if (c.media === "image") {
    media = el("img");
    media.alt = c.title;
    media.decoding = "async";
    media.addEventListener("load", () => fitTile(c, box, media.naturalWidth, media.naturalHeight));
  } else {
    media = el("video");
    media.controls = true; media.muted = true; media.defaultMuted = true; media.loop = true;
    media.playsInline = true;
    media.preload = "metadata";
    media.setAttribute("aria-label", c.title);
    media.addEventListener("mouseenter", () => media.play().catch(() => {}));
    media.addEventListener("mouseleave", () => media.pause());
    media.addEventListener("loadedmetadata", () => fitTile(c, box, media.videoWidth, media.videoHeight));
  }
  media.addEventListener("error", () => {
    if (!media.isConnected || !media.getAttribute("src")) return;  // unmounted: not the file's fault
    const code = media.error ? media.error.code : 0;
    broken.set(c.key, (c.media === "image" ? "This image cannot be shown: " : "This video cannot be played here: ") +
      (MEDIA_ERRORS[code] || "the browser could not load it") + ". ");
    media.remove();
    box.append(brokenNote(c));
    card.classList.add("broken");
  });
  media.src = c.href;
  box.append(media);
}
function brokenNote(c) {
  const note = el("div", "nofile broken", broken.get(c.key));
  const a = el("a", "", "Open the file");
  a.href = c.href;
  a.target = "_blank";
  a.rel = "noopener";
  note.append(a);
  return note;
}
// A tile has the shape the job asked for (so cards keep their size as media mount and unmount);
// without one, the shape of the file itself once it is read.
function fitTile(c, box, width, height) {
  if (!c.ratio && width > 0 && height > 0) box.style.aspectRatio = width + " / " + height;
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

// ---------------------------------------------------------------- cards
function fact(dl, term, value, title) {
  if (value === null || value === undefined || value === "") return;
  dl.append(el("dt", "", term));
  const dd = el("dd", "", value);
  if (title) dd.title = title;
  dl.append(dd);
}
function fileLink(text, href) {
  const a = el("a", "", text);
  a.href = href;
  a.target = "_blank";
  a.rel = "noopener";
  return a;
}

// An unverified result: paid, its bytes failed verification and are kept aside. Never a player
// (they may not play); a link to the kept file, and what to do about it.
function keptNote(c) {
  const note = el("div", "nofile kept", "not verified: its bytes failed verification and are kept at ");
  note.append(c.kept_href ? fileLink(c.kept, c.kept_href) : el("span", "", c.kept));
  note.append(el("span", "", " · `batchgen unverified` to accept them or fetch again"));
  return note;
}

function cardTop(c) {
  const row = el("div", "row");
  if (c.pickable) {  // only a result on disk can be picked: a failed job has nothing to hand over
    const pick = el("label", "pick");
    const box = el("input");
    box.type = "checkbox";
    box.className = "pick-box";
    box.checked = picks.has(c.key);
    box.addEventListener("change", () => setPick(c.key, box.checked));
    pick.append(box, el("span", "", "Pick"));
    row.append(pick);
  }
  row.append(el("span", "state " + stateClass(c.state), c.state));
  if (MONEY && c.cost) row.append(el("span", "cost", c.cost));
  return row;
}

function cardFacts(c) {
  const dl = el("dl", "facts");
  fact(dl, "format", [c.aspect, c.duration].filter(Boolean).join(" · "));
  if (MONEY) fact(dl, "billed", c.billed, "what the provider's history says was charged (the quote is above)");
  fact(dl, "finished", c.finished_at);
  fact(dl, "generation", c.generation_id);
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
    dd.append(fileLink(c.path, c.href));
    dl2.append(dd);
  } else if (c.path) {
    fact(dl2, "file", c.path);
  }
  more.append(dl2);
  return [dl, more];
}

function buildCard(c) {
  const card = el("article", "card " + stateClass(c.state));
  card.id = "card-" + c.index;
  card.dataset.key = c.key;
  card.dataset.state = c.state;
  const box = el("div", "media");
  if (c.ratio) box.style.aspectRatio = c.ratio[0] + " / " + c.ratio[1];
  if (c.kept) box.append(keptNote(c));
  else if (!c.href) box.append(el("div", "nofile", "no file (" + c.state + ")"));
  const body = el("div", "body");
  const title = el("h2", "name", c.heading || c.title);
  title.title = c.title + " · job " + c.name + ", replica " + c.replica + ", key " + c.key;
  body.append(cardTop(c), title);
  if (c.vars.length) {
    const ul = el("ul", "vars");
    for (const [k, v, shortened] of c.vars) {
      const li = chip("li", k, v);
      if (shortened) li.lastChild.title = shortened;
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
  body.append(...cardFacts(c));
  card.append(box, body);
  if (picks.has(c.key)) card.classList.add("picked");
  return card;
}

const haystacks = new Map();
for (const c of CARDS) {
  const card = buildCard(c);
  nodes.set(c.key, card);
  cardOf.set(card, c);
  haystacks.set(c.key, [c.title, c.prompt, c.key, c.generation_id, c.error, c.path, c.kept, c.state,
    ...c.vars.map((kv) => kv[1])].filter(Boolean).join("\n").toLowerCase());
  if (lazy) lazy.observe(card);
}
