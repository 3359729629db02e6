// Quarry's page: plain DOM calls on the JSON API, no framework. Text from
// the index is only ever set as textContent, so a document cannot inject
// markup; links are kept only for http(s) URIs.
"use strict";

const KEY = "quarry.key";
const $ = (id) => document.getElementById(id);

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props || {});
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function showMessage(text) {
  const box = $("message");
  box.textContent = text || "";
  box.hidden = !text;
}

function askForKey(reason) {
  $("key-panel").hidden = false;
  $("key-state").textContent = reason;
}

// Calls the API with the tab's key; a 401 or 403 asks for another key.
async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const key = sessionStorage.getItem(KEY);
  if (key) headers.Authorization = "Bearer " + key;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try {
    data = await resp.json();
  } catch (_) {
    data = null;
  }
  if (resp.status === 401 || resp.status === 403) {
    askForKey(key ? "that key was refused" : "a key is needed");
  }
  if (!resp.ok) {
    const message = data && data.error ? data.error.code + ": " + data.error.message : resp.statusText;
    throw new Error(message);
  }
  return { data, headers: resp.headers };
}

function safeLink(uri, text) {
  if (/^https?:\/\//i.test(uri || "")) {
    return el("a", { href: uri, textContent: text, target: "_blank", rel: "noopener noreferrer" });
  }
  return el("span", { textContent: text });
}

function when(unix) {
  return unix ? new Date(unix * 1000).toLocaleString() : "never";
}

async function loadCollections() {
  const { data } = await api("GET", "/v1/collections");
  const names = data.collections.map((c) => c.name);
  for (const select of document.querySelectorAll("select.collection")) {
    const current = select.value;
    select.replaceChildren(...names.map((n) => el("option", { value: n, textContent: n })));
    if (names.includes(current)) select.value = current;
  }
  $("key-state").textContent = sessionStorage.getItem(KEY) ? "key set for this tab" : "";
  $("key-panel").hidden = true;
  if (names.length === 0) showMessage("There are no collections yet: run `quarry sync` first.");
  return names;
}

function filterOf() {
  const filter = {};
  const path = $("filter-path").value.trim();
  const tags = $("filter-tags").value.split(",").map((t) => t.trim()).filter(Boolean);
  const source = $("filter-source").value.trim();
  if (path) filter.path_prefix = path;
  if (tags.length) filter.tags = tags;
  if (source) filter.source = source;
  return filter;
}

async function search(event) {
  event.preventDefault();
  showMessage("");
  const name = $("search-collection").value;
  const body = {
    query: $("search-query").value,
    mode: $("search-mode").value,
    top_k: Number($("search-topk").value) || 10,
    filter: filterOf(),
  };
  const started = performance.now();
  try {
    const { data, headers } = await api("POST", "/v1/collections/" + encodeURIComponent(name) + "/search", body);
    const ms = Math.round(performance.now() - started);
    const notes = [data.hits.length + " hits in " + ms + " ms"];
    if (headers.get("quarry-cache")) notes.push("cache " + headers.get("quarry-cache"));
    if (data.degraded) notes.push("degraded: " + data.degraded.reason + ", served by " + data.degraded.served);
    $("search-summary").textContent = notes.join(" · ");
    $("search-results").replaceChildren(
      ...data.hits.map((h) =>
        el(
          "li",
          { className: "hit" },
          el("div", { className: "title" }, safeLink(h.uri, h.title || h.doc_id)),
          el("div", {
            className: "meta",
            textContent: "score " + h.score.toFixed(4) + " · " + h.uri + (h.headings.length ? " · " + h.headings.join(" › ") : ""),
          }),
          el("p", { className: "snippet", textContent: h.text.length > 600 ? h.text.slice(0, 600) + "…" : h.text }),
        ),
      ),
    );
  } catch (e) {
    showMessage(e.message);
  }
}

async function context(event) {
  event.preventDefault();
  showMessage("");
  const name = $("context-collection").value;
  const body = { query: $("context-query").value, max_tokens: Number($("context-tokens").value) || 512 };
  try {
    const { data } = await api("POST", "/v1/collections/" + encodeURIComponent(name) + "/context", body);
    $("context-summary").textContent =
      data.tokens + " / " + data.max_tokens + " tokens · " + data.passages.length + " citations" +
      (data.degraded ? " · degraded: " + data.degraded.reason : "");
    $("context-text").textContent = data.text;
    $("context-citations").replaceChildren(
      ...data.passages.map((p) =>
        el(
          "li",
          { className: "citation", value: p.citation },
          el("span", { textContent: "[" + p.citation + "] " }),
          safeLink(p.uri, p.title || p.doc_id),
          el("div", { className: "meta", textContent: p.uri + " · score " + p.score.toFixed(4) }),
        ),
      ),
    );
  } catch (e) {
    showMessage(e.message);
  }
}

async function sources() {
  try {
    const { data } = await api("GET", "/v1/sources");
    $("sources-table").tBodies[0].replaceChildren(
      ...data.sources.map((s) =>
        el(
          "tr",
          {},
          el("td", { textContent: s.source + (s.running ? " (running)" : "") }),
          el("td", { textContent: s.kind }),
          el("td", { textContent: s.collection }),
          el("td", { textContent: when(s.last_success_unix) }),
          el("td", { textContent: s.next_run_unix ? when(s.next_run_unix) : s.watch ? "on change" : "manual" }),
          el("td", { textContent: s.lag_seconds === null || s.lag_seconds === undefined ? "" : s.lag_seconds + " s" }),
          el("td", { className: s.error ? "error" : "", textContent: s.error || "" }),
        ),
      ),
    );
  } catch (e) {
    showMessage(e.message);
  }
}

async function stats() {
  const name = $("stats-collection").value;
  if (!name) return;
  try {
    const { data } = await api("GET", "/v1/collections/" + encodeURIComponent(name) + "/stats");
    $("stats-table").tBodies[0].replaceChildren(
      ...Object.entries(data.by_mode).map(([mode, m]) =>
        el(
          "tr",
          {},
          el("td", { textContent: mode }),
          el("td", { textContent: String(m.queries) }),
          el("td", { textContent: String(m.low) }),
          el("td", { textContent: m.queries ? (m.score_sum / m.queries).toFixed(4) : "" }),
        ),
      ),
    );
    $("stats-summary").textContent =
      data.queries + " queries, " + data.low_score_queries + " low-score (" + (100 * data.low_share).toFixed(1) + "%)" +
      (data.query_log ? "" : " · set server.query_log = true to see them");
    $("stats-low").replaceChildren(
      ...data.recent_low.map((q) => el("li", { textContent: q.mode + ": " + q.query })),
    );
  } catch (e) {
    showMessage(e.message);
  }
}

function showTab(name) {
  for (const button of document.querySelectorAll("nav button")) {
    button.classList.toggle("active", button.dataset.tab === name);
  }
  for (const tab of document.querySelectorAll("section.tab")) {
    tab.hidden = tab.id !== "tab-" + name;
  }
  if (name === "sources") sources();
  if (name === "stats") stats();
}

async function start() {
  for (const button of document.querySelectorAll("nav button")) {
    button.addEventListener("click", () => showTab(button.dataset.tab));
  }
  $("search-form").addEventListener("submit", search);
  $("context-form").addEventListener("submit", context);
  $("stats-collection").addEventListener("change", stats);
  $("key-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, $("key").value.trim());
    $("key").value = "";
    showMessage("");
    try {
      await loadCollections();
    } catch (e) {
      showMessage(e.message);
    }
  });
  const config = await (await fetch("/ui/config.json")).json();
  if (config.keys_required && !sessionStorage.getItem(KEY)) {
    askForKey("a key is needed");
    return;
  }
  try {
    await loadCollections();
  } catch (e) {
    if (!$("key-panel").hidden) return; // the key form says what to do
    showMessage(e.message);
  }
}

start();
