// earmark web page: search box with concept autocompletion, results with players, waveform,
// matched-concept bars, best range, evidence and "find similar". Plain JS, no build step.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const state = { lastText: "", suggestIndex: -1, suggestTimer: null, suggestSeq: 0 };

function fmt(x, digits = 3) { return typeof x === "number" && isFinite(x) ? x.toFixed(digits) : "–"; }
// Significant digits: contributions range over orders of magnitude.
function fmtSig(x) { return typeof x === "number" && isFinite(x) ? (x === 0 ? "0" : x.toPrecision(2)) : "–"; }
function fmtTime(s) { return typeof s === "number" ? `${s.toFixed(2)} s` : "–"; }

async function api(url, options = {}) {
  const res = await fetch(url, options);
  const type = res.headers.get("content-type") || "";
  const body = type.includes("application/json") ? await res.json() : await res.text();
  if (!res.ok) {
    const err = new Error((body && body.error && body.error.message) || `HTTP ${res.status}`);
    err.info = body && body.error ? body.error : {};
    throw err;
  }
  return body;
}

// ---------------------------------------------------------------- library status
async function loadStatus() {
  try {
    const s = await api("/api/status");
    $("#library-status").textContent =
      `${s.sounds_indexed} sounds · ${s.segments} segments · ${s.hours_indexed.toFixed(2)} h · encoder ${s.encoder}` +
      (s.vocabulary ? ` · ${s.concepts} concepts (${s.vocabulary.split("/").pop()})` : "") +
      ` · evidence: ${{library: "L-MAC, library decoder", shipped: "L-MAC, shipped decoder",
                        none: "gradient saliency"}[s.evidence_decoder] || s.evidence_decoder}` +
      (s.sounds_pending ? ` · ${s.sounds_pending} waiting to be re-embedded (earmark reembed)` : "");
    if (!s.server.writes_enabled) $("#library-status").title = "read-only server (no token configured)";
  } catch (e) {
    $("#library-status").textContent = `library unavailable: ${e.message}`;
  }
}

// ---------------------------------------------------------------- autocompletion
// Completes the concept term under the caret: "+rai|" → "+rain", "-mus|" → "-music", "rai|:0.5" → ...
function termAtCaret(input) {
  const caret = input.selectionStart ?? input.value.length;
  const before = input.value.slice(0, caret);
  const start = before.search(/\S*$/);
  const token = before.slice(start);
  const m = token.match(/^([+-]?)([^\s:+-][^\s:]*)$/);
  if (!m) return null;
  const signed = m[1] !== "";
  if (!signed && m[2].length < 3) return null;  // bare words complete only from 3 letters: they are free text too
  return { start, end: caret, sign: m[1], word: m[2] };
}

function hideSuggestions() {
  const box = $("#suggestions");
  box.hidden = true;
  box.innerHTML = "";
  state.suggestIndex = -1;
  $("#q").setAttribute("aria-expanded", "false");
}

async function suggest() {
  const input = $("#q");
  const term = termAtCaret(input);
  if (!term) { hideSuggestions(); return; }
  const seq = ++state.suggestSeq;
  let data;
  try {
    data = await api(`/api/vocabulary/complete?prefix=${encodeURIComponent(term.word.replace(/_/g, " "))}&limit=8`);
  } catch (e) { hideSuggestions(); return; }
  if (seq !== state.suggestSeq) return;  // a newer keystroke already asked again
  const box = $("#suggestions");
  box.innerHTML = "";
  for (const word of data.completions) {
    const li = document.createElement("li");
    li.setAttribute("role", "option");
    li.textContent = word;
    li.addEventListener("mousedown", (ev) => { ev.preventDefault(); applySuggestion(word); });
    box.appendChild(li);
  }
  box.hidden = data.completions.length === 0;
  input.setAttribute("aria-expanded", String(!box.hidden));
  state.suggestIndex = -1;
}

function conceptToken(word) {
  // Multi-word concepts are written with underscores so that a term stays one token.
  return word.trim().replace(/\s+/g, "_");
}

function applySuggestion(word) {
  const input = $("#q");
  const term = termAtCaret(input);
  if (!term) return;
  const sign = term.sign || "+";
  const insert = `${sign}${conceptToken(word)} `;
  input.value = input.value.slice(0, term.start) + insert + input.value.slice(term.end).replace(/^\s+/, "");
  const caret = term.start + insert.length;
  input.setSelectionRange(caret, caret);
  hideSuggestions();
  input.focus();
}

function moveSelection(delta) {
  const items = [...$("#suggestions").children];
  if (!items.length) return false;
  state.suggestIndex = (state.suggestIndex + delta + items.length) % items.length;
  items.forEach((li, i) => li.setAttribute("aria-selected", String(i === state.suggestIndex)));
  return true;
}

// ---------------------------------------------------------------- search
function searchParams() {
  const p = new URLSearchParams();
  p.set("k", $("#k").value || "10");
  p.set("ranking", $("#ranking").value);
  for (const id of ["path_glob", "min_duration", "max_duration"]) {
    const v = $(`#${id}`).value.trim();
    if (v) p.set(id, v);
  }
  return p;
}

async function runSearch(ev) {
  if (ev) ev.preventDefault();
  hideSuggestions();
  const q = $("#q").value.trim();
  const file = $("#example").files[0];
  if (!q && !file) { showError({ message: "type a query or choose an example sound" }); return; }
  const params = searchParams();
  let result;
  setBusy(true);
  try {
    if (file) {
      const form = new FormData();
      form.append("file", file);
      form.append("q", q);
      result = await api(`/api/search/upload?${params}`, { method: "POST", body: form });
    } else {
      params.set("q", q);
      result = await api(`/api/search?${params}`);
    }
    state.lastText = file || /^like:\S+$/.test(q) ? "" : q;  // evidence explains this text
    showResults(result, file ? `like ${file.name}${q ? " + " + q : ""}` : q);
  } catch (e) {
    showError(e.info && e.info.message ? e.info : { message: e.message });
  } finally {
    setBusy(false);
  }
}

async function findSimilar(hit) {
  setBusy(true);
  try {
    const result = await api(`/api/sounds/${hit.sound_id}/similar?k=${encodeURIComponent($("#k").value || "10")}`);
    state.lastText = "";  // results of an example sound: evidence explains each hit's top concept
    showResults(result, `similar to ${hit.path}`);
    window.scrollTo({ top: 0, behavior: "smooth" });
  } catch (e) {
    showError(e.info && e.info.message ? e.info : { message: e.message });
  } finally {
    setBusy(false);
  }
}

function setBusy(busy) {
  $("#search-button").disabled = busy;
  $("#search-button").textContent = busy ? "Searching…" : "Search";
}

function showError(info) {
  const box = $("#error");
  box.innerHTML = "";
  box.append(document.createTextNode(info.message));
  if (info.suggestions && info.suggestions.length) {
    const div = document.createElement("div");
    div.className = "suggestions";
    div.append(document.createTextNode("Did you mean: "));
    for (const s of info.suggestions) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = s;
      b.addEventListener("click", () => replaceUnknown(info.message, s));
      div.appendChild(b);
    }
    box.appendChild(div);
  }
  box.hidden = false;
}

// Replace the concept term named in the error message by the chosen suggestion, then search again.
function replaceUnknown(message, suggestion) {
  const input = $("#q");
  input.value = input.value.split(/\s+/).map((tok) => {
    const m = tok.match(/^([+-]?)([^:]+)(:.*)?$/);
    if (m && m[2].length > 1 && message.includes(m[2].replace(/_/g, " ")) || (m && message.includes(m[2]))) {
      return `${m[1]}${conceptToken(suggestion)}${m[3] || ""}`;
    }
    return tok;
  }).join(" ");
  runSearch();
}

// "What earmark understood": the query's concept form, exclusions and filters.
function describeQuery(query, label) {
  const parts = [label];
  if (query && typeof query === "object") {
    if (Array.isArray(query.concepts) && query.concepts.length) {
      parts.push("reads as " + query.concepts.slice(0, 6).map((c) => `${c.concept} ${fmt(c.weight, 2)}`).join(", "));
    }
    if (Array.isArray(query.borrowed_from) && query.borrowed_from.length) {
      parts.push("sounds like " + query.borrowed_from.slice(0, 3).map((b) => `${b.label} ${fmt(b.weight, 2)}`).join(", "));
    }
    if (Array.isArray(query.support) && query.support.length) {
      const n = query.support.reduce((sum, x) => sum + x.sounds, 0);
      parts.push(`ranked by nearness to ${n} training sound${n === 1 ? "" : "s"} of ` + query.support.slice(0, 3).map((x) => x.label).join(", "));
    }
    if (Array.isArray(query.excluded) && query.excluded.length) parts.push("without " + query.excluded.join(", "));
    const filters = Object.entries(query.filters || {}).filter(([, v]) => v !== null && v !== undefined);
    if (filters.length) parts.push(filters.map(([k, v]) => `${k} ${v}`).join(", "));
  }
  return parts.join(" · ");
}

function showResults(result, label) {
  $("#error").hidden = true;
  const list = $("#results");
  list.innerHTML = "";
  const hits = result.hits || [];
  $("#query-info").textContent = `${describeQuery(result.query, label)} · ${hits.length} result${hits.length === 1 ? "" : "s"}`;
  const ranking = (result.query && result.query.ranking) || "dense";
  hits.forEach((hit, i) => list.appendChild(renderHit(hit, i + 1, ranking)));
}

// ---------------------------------------------------------------- one hit
function renderHit(hit, rank, ranking) {
  const li = $("#hit-template").content.firstElementChild.cloneNode(true);
  li.dataset.soundId = hit.sound_id;
  $(".rank", li).textContent = `${rank}.`;
  $(".path", li).textContent = hit.path;
  $(".path", li).title = hit.abs_path || hit.path;
  let score = `score ${fmt(hit.score)} · dense ${fmt(hit.dense_score)} · concept ${fmt(hit.concept_score)}`;
  if (Array.isArray(hit.support_examples) && hit.support_examples.length) {
    // the exemplar support term in the score, and the training sound the hit is nearest
    const near = hit.support_examples[0];
    score += ` · support ${fmt(hit.support_score)} (≈ ${near.label} ${fmt(near.similarity, 2)})`;
  }
  $(".score", li).textContent = score;
  const audio = $(".player", li);
  audio.src = hit.audio_url || `/api/sounds/${hit.sound_id}/audio`;
  const hasRange = typeof hit.start === "number" && typeof hit.end === "number";
  $(".range", li).textContent = hasRange ? `best ${fmtTime(hit.start)}–${fmtTime(hit.end)}` : "";
  $(".play-best", li).addEventListener("click", () => playRange(audio, hasRange ? hit.start : 0, hasRange ? hit.end : null));
  $(".similar", li).addEventListener("click", () => findSimilar(hit));
  $(".show-evidence", li).addEventListener("click", () => showEvidence(li, hit));
  // What ranked the hit: under dense ranking the concept account of its dense score, otherwise
  // its shared concepts' contributions to the concept score (the dense account when it shares none).
  const shared = hit.contributions || [];
  const bars = (ranking !== "dense" && shared.length) ? shared : (hit.dense_contributions || []);
  renderBars($(".bars", li), bars);
  renderChips($(".top-concepts", li), hit.top_concepts || []);
  drawWaveform($(".wave", li), hit, audio);
  return li;
}

function playRange(audio, start, end) {
  document.querySelectorAll("audio").forEach((a) => { if (a !== audio) a.pause(); });
  const go = () => {
    audio.currentTime = start;
    audio.play().catch(() => {});
  };
  audio.dataset.stopAt = end === null ? "" : String(end);
  if (audio.readyState >= 1) go(); else { audio.addEventListener("loadedmetadata", go, { once: true }); audio.load(); }
}

function renderBars(container, contributions) {
  container.innerHTML = "";
  const rows = [...contributions].sort((a, b) => Math.abs(b.contribution) - Math.abs(a.contribution)).slice(0, 8);
  const max = Math.max(1e-12, ...rows.map((c) => Math.abs(c.contribution)));
  for (const c of rows) {
    const row = document.createElement("div");
    row.className = "bar-row";
    row.title = `query weight ${fmt(c.query_weight)} × hit weight ${fmt(c.hit_weight)} = ${fmt(c.contribution, 4)}`;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = c.concept;
    const track = document.createElement("div");
    track.className = "bar-track";
    const bar = document.createElement("div");
    bar.className = "concept-bar" + (c.contribution < 0 ? " negative" : "");
    bar.style.width = `${(100 * Math.abs(c.contribution) / max).toFixed(1)}%`;
    track.appendChild(bar);
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = fmtSig(c.contribution);
    row.append(name, track, value);
    container.appendChild(row);
  }
  if (!rows.length) container.innerHTML = '<span class="muted">no concept terms matched</span>';
}

function renderChips(container, concepts) {
  container.innerHTML = "";
  for (const c of concepts.slice(0, 10)) {
    const chip = document.createElement("button");
    chip.type = "button";
    chip.className = "chip";
    chip.textContent = `${c.concept} ${fmt(c.weight, 2)}`;
    chip.title = "add this concept to the query";
    chip.addEventListener("click", () => {
      const input = $("#q");
      input.value = `${input.value.trim()} +${conceptToken(c.concept)}`.trim();
      runSearch();
    });
    container.appendChild(chip);
  }
}

async function drawWaveform(canvas, hit, audio) {
  let peaks;
  try { peaks = await api(`${hit.peaks_url || `/api/sounds/${hit.sound_id}/peaks`}?points=300`); } catch (e) { return; }
  const draw = () => {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || 600, h = canvas.clientHeight || 56;
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
    const ctx = canvas.getContext("2d");
    ctx.scale(dpr, dpr);
    ctx.clearRect(0, 0, w, h);
    const dur = peaks.duration || 1;
    if (typeof hit.start === "number" && typeof hit.end === "number") {
      ctx.fillStyle = "rgba(217, 72, 15, 0.18)";
      ctx.fillRect(w * hit.start / dur, 0, Math.max(2, w * (hit.end - hit.start) / dur), h);
    }
    ctx.fillStyle = "#2f6fde";
    const n = peaks.points, bw = w / n;
    for (let i = 0; i < n; i++) {
      const top = h / 2 - (peaks.max[i] * h) / 2, bottom = h / 2 - (peaks.min[i] * h) / 2;
      ctx.fillRect(i * bw, top, Math.max(1, bw - 0.3), Math.max(1, bottom - top));
    }
    if (audio.currentTime > 0) {
      ctx.fillStyle = "#1d2330";
      ctx.fillRect(w * audio.currentTime / dur, 0, 1.5, h);
    }
  };
  draw();
  audio.addEventListener("timeupdate", () => {
    const stop = parseFloat(audio.dataset.stopAt);
    if (!isNaN(stop) && audio.currentTime >= stop) { audio.pause(); audio.dataset.stopAt = ""; }
    draw();
  });
  canvas.addEventListener("click", (ev) => {
    const r = canvas.getBoundingClientRect();
    playRange(audio, (peaks.duration || 0) * (ev.clientX - r.left) / r.width, null);
  });
}

async function showEvidence(li, hit) {
  const panel = $(".evidence", li);
  panel.hidden = false;
  panel.textContent = "computing evidence…";
  const firstConcept = (hit.contributions && hit.contributions[0] && hit.contributions[0].concept)
    || (hit.top_concepts && hit.top_concepts[0] && hit.top_concepts[0].concept) || "";
  const q = state.lastText || firstConcept;
  if (!q) { panel.textContent = "no text query to explain"; return; }
  const start = typeof hit.start === "number" ? hit.start : 0;
  const end = typeof hit.end === "number" ? hit.end : start + 1;
  try {
    const ev = await api(`/api/sounds/${hit.sound_id}/evidence?start=${start}&end=${end}&q=${encodeURIComponent(q)}`);
    panel.innerHTML = "";
    const head = document.createElement("div");
    head.innerHTML = `<span class="method"></span> <span class="muted"></span>`;
    $(".method", head).textContent = ev.label || (ev.method === "lmac" ? "L-MAC evidence" : "gradient saliency (no trained decoder)");
    $(".muted", head).textContent = `for “${q}”, ${fmtTime(start)}–${fmtTime(end)}`;
    const img = document.createElement("img");
    img.src = ev.png_url;
    img.alt = "spectrogram with the evidence mask";
    const players = document.createElement("div");
    for (const [label, url] of [["what carries it", ev.mask_in_url], ["the rest", ev.mask_out_url]]) {
      const lab = document.createElement("label");
      lab.textContent = `${label} `;
      const a = document.createElement("audio");
      a.controls = true; a.preload = "none"; a.src = url;
      lab.appendChild(a);
      players.appendChild(lab);
    }
    panel.append(head, img, players);
  } catch (e) {
    panel.textContent = `evidence unavailable: ${e.message}`;
  }
}

// ---------------------------------------------------------------- wiring
document.addEventListener("DOMContentLoaded", () => {
  loadStatus();
  $("#search-form").addEventListener("submit", runSearch);
  const input = $("#q");
  input.addEventListener("input", () => {
    clearTimeout(state.suggestTimer);
    state.suggestTimer = setTimeout(suggest, 120);
  });
  input.addEventListener("keydown", (ev) => {
    const open = !$("#suggestions").hidden;
    if (ev.key === "ArrowDown" && open) { ev.preventDefault(); moveSelection(1); }
    else if (ev.key === "ArrowUp" && open) { ev.preventDefault(); moveSelection(-1); }
    else if ((ev.key === "Enter" || ev.key === "Tab") && open && state.suggestIndex >= 0) {
      ev.preventDefault();
      applySuggestion($("#suggestions").children[state.suggestIndex].textContent);
    } else if (ev.key === "Escape") hideSuggestions();
  });
  input.addEventListener("blur", () => setTimeout(hideSuggestions, 150));
  const params = new URLSearchParams(location.search);  // ?q=...&k=...&ranking=... searches at once
  for (const id of ["k", "ranking", "path_glob", "min_duration", "max_duration"]) {
    if (params.get(id)) $(`#${id}`).value = params.get(id);
  }
  if (params.get("q")) { input.value = params.get("q"); runSearch(); }
});
