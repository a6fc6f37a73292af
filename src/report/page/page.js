"use strict";
// The page of a strata run, drawn from the JSON in #data. Every text of the
// run is set with textContent: nothing of a run is ever read as markup.
(function () {
  const data = JSON.parse(document.getElementById("data").textContent);
  const images = data.images || [];
  const byName = new Map(images.map((i) => [i.name, i]));
  const SVG = "http://www.w3.org/2000/svg";
  const LABELS = {
    built: "built", "up-to-date": "up to date", pulled: "pulled",
    failed: "failed", "parent-failed": "skipped", cancelled: "cancelled",
  };

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") e.textContent = v;
      else if (k === "class") e.className = v;
      else e.setAttribute(k, v);
    }
    for (const k of kids) if (k != null) e.append(k);
    return e;
  }
  function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }
  const secs = (s) => (typeof s === "number" ? s.toFixed(1) + " s" : "?");
  // An image's state on the page: the summary's, with "pulled" for one
  // fetched from the registry.
  const state = (i) => (i.status === "up-to-date" && i.pulled ? "pulled" : i.status || "unknown");

  // The failed ancestor an image was skipped because of.
  function cause(i) {
    if (i.failed_parent) return i.failed_parent;
    const seen = new Set();
    const walk = (n) => {
      for (const p of (byName.get(n) || {}).needs || []) {
        if (seen.has(p)) continue;
        seen.add(p);
        const q = byName.get(p);
        if (q && q.status === "failed") return p;
        const up = walk(p);
        if (up) return up;
      }
      return null;
    };
    return walk(i.name);
  }

  function header() {
    const head = document.getElementById("head");
    const counts = {};
    for (const i of images) counts[state(i)] = (counts[state(i)] || 0) + 1;
    const ok = !images.some((i) => !["built", "up-to-date"].includes(i.status));
    head.append(el("h1", { text: "strata run: " + (ok ? "all good" : "not all good"), class: ok ? "good" : "bad" }));
    const line = el("p", { id: "counts" });
    for (const [s, n] of Object.entries(counts)) {
      line.append(el("span", { class: "count state-" + s, "data-state": s, text: n + " " + (LABELS[s] || s) }));
    }
    head.append(line);
    const f = data.first_failure;
    if (f) {
      const p = el("p", { id: "first-failure" }, "First failure: ");
      p.append(link(f.name), el("span", { text: ": " + (f.error || "") }));
      if (f.skipped.length) {
        p.append(el("br"), "It skipped " + f.skipped.length + ": ");
        f.skipped.forEach((n, k) => p.append(k ? ", " : "", link(n)));
      }
      head.append(p);
    }
    const wall = el("p", { id: "wall" });
    wall.textContent = "Wall time " + secs(data.wall_s) + "; the critical path's lower bound " +
      secs(data.critical_s) + " (" + (data.critical || []).join(" → ") + ")";
    head.append(wall);
    if (data.commit) head.append(el("p", { id: "commit", text: "Commit " + data.commit }));
    const moved = [];
    for (const i of images) for (const r of i.pushed || []) moved.push(r);
    for (const x of data.indexes || []) for (const r of x.moved || []) moved.push(r + " (index of " + x.platforms.join(", ") + ")");
    const pub = el("details", { id: "published" }, el("summary", { text: "Published: " + moved.length + " references" }));
    const list = el("ul");
    moved.forEach((r) => list.append(el("li", { text: r })));
    pub.append(list);
    head.append(pub);
  }

  function link(name) {
    const a = el("a", { href: "#image=" + encodeURIComponent(name), text: name });
    return a;
  }

  function missing() {
    const box = document.getElementById("missing");
    for (const m of data.missing || []) box.append(el("p", { class: "missing", text: m }));
  }

  // Filters: by state and by name; what does not match is dimmed.
  const shown = new Set(Object.keys(LABELS).concat(["unknown"]));
  let needle = "";
  function filters() {
    const nav = document.getElementById("filters");
    for (const s of Object.keys(LABELS)) {
      if (!images.some((i) => state(i) === s)) continue;
      const box = el("input", { type: "checkbox", "data-state": s });
      box.checked = true;
      box.addEventListener("change", () => {
        box.checked ? shown.add(s) : shown.delete(s);
        apply();
      });
      nav.append(el("label", { class: "state-" + s }, box, " " + LABELS[s]));
    }
    const name = el("input", { type: "search", id: "name-filter", placeholder: "filter by name" });
    name.addEventListener("input", () => {
      needle = name.value.trim().toLowerCase();
      apply();
    });
    nav.append(name);
  }
  function apply() {
    for (const n of document.querySelectorAll("[data-name]")) {
      const i = byName.get(n.getAttribute("data-name"));
      if (!i) continue;
      const hide = !shown.has(state(i)) || (needle && !i.name.toLowerCase().includes(needle));
      n.classList.toggle("dim", !!hide);
    }
  }

  // The set as a graph: one column per level, edges from parent to child.
  function graph() {
    const W = 140, H = 24, GAP = 36;
    const cols = [];
    for (const i of images) (cols[i.level || 0] = cols[i.level || 0] || []).push(i);
    const rows = Math.max(1, ...cols.map((c) => (c ? c.length : 0)));
    const box = svg("svg", {
      width: cols.length * (W + GAP) + 20, height: rows * (H + 8) + 20, id: "graph-svg",
    });
    const at = new Map();
    cols.forEach((col, x) => (col || []).forEach((i, y) => at.set(i.name, [10 + x * (W + GAP), 10 + y * (H + 8)])));
    const edges = svg("g", { class: "edges" });
    for (const i of images) {
      const [x2, y2] = at.get(i.name);
      for (const p of i.needs || []) {
        if (!at.has(p)) continue;
        const [x1, y1] = at.get(p);
        edges.append(svg("path", {
          d: `M${x1 + W},${y1 + H / 2} C${x1 + W + GAP / 2},${y1 + H / 2} ${x2 - GAP / 2},${y2 + H / 2} ${x2},${y2 + H / 2}`,
        }));
      }
    }
    box.append(edges);
    for (const i of images) {
      const [x, y] = at.get(i.name);
      const g = svg("g", { class: "node state-" + state(i), "data-name": i.name, "data-state": state(i), tabindex: 0 });
      g.append(svg("rect", { x, y, width: W, height: H, rx: 4 }));
      const t = svg("text", { x: x + 6, y: y + 16 });
      t.textContent = i.name.length > 19 ? i.name.slice(0, 18) + "…" : i.name;
      const title = svg("title");
      title.textContent = i.name + ": " + (LABELS[state(i)] || state(i));
      g.append(t, title);
      g.addEventListener("click", () => open(i.name));
      g.addEventListener("keydown", (e) => e.key === "Enter" && open(i.name));
      box.append(g);
    }
    document.getElementById("graph").append(el("h2", { text: "The set" }), box);
  }

  function timeline() {
    const sec = document.getElementById("timeline");
    sec.append(el("h2", { text: "Timeline (outlined: the critical path)" }));
    const holder = el("div");
    // The SVG is strata's own drawing, its texts escaped when drawn.
    holder.innerHTML = data.timeline || "";
    sec.append(holder);
    for (const bar of holder.querySelectorAll("rect.bar[data-name]")) {
      bar.addEventListener("click", () => open(bar.getAttribute("data-name")));
    }
  }

  function open(name) {
    const want = "#image=" + encodeURIComponent(name);
    if (location.hash !== want) history.replaceState(null, "", want);
    panel(name);
  }

  function row(table, key, value) {
    if (value == null || value === "" || (Array.isArray(value) && !value.length)) return;
    const v = Array.isArray(value) ? value.join("\n") : String(value);
    table.append(el("tr", {}, el("th", { text: key }), el("td", { text: v })));
  }

  function panel(name) {
    const p = document.getElementById("panel");
    const i = byName.get(name);
    p.replaceChildren();
    p.hidden = false;
    for (const n of document.querySelectorAll(".node.selected")) n.classList.remove("selected");
    if (!i) {
      p.append(el("p", { class: "missing", text: "No image " + name + " in this run." }));
      return;
    }
    for (const n of document.querySelectorAll('.node[data-name="' + CSS.escape(name) + '"]')) n.classList.add("selected");
    p.setAttribute("data-name", name);
    const close = el("button", { class: "close", text: "×", title: "close" });
    close.addEventListener("click", () => { p.hidden = true; history.replaceState(null, "", location.pathname); });
    p.append(close, el("h2", { text: name }), el("p", { class: "state state-" + state(i), id: "panel-state", text: LABELS[state(i)] || state(i) }));
    const t = el("table");
    if (i.status === "parent-failed") row(t, "skipped because", (cause(i) || "a parent") + " failed");
    row(t, "why", i.reasons);
    row(t, "error", i.error);
    row(t, "platform", i.platform);
    row(t, "parents", Object.entries(i.parents || {}).map(([k, v]) => k + " " + v));
    if (!Object.keys(i.parents || {}).length) row(t, "parents", i.needs);
    row(t, "engine", i.engine);
    row(t, "builder", i.builder + (i.build_mode ? " (" + i.build_mode + ")" : ""));
    row(t, "duration", secs(i.duration_s));
    row(t, "digest", i.digest);
    row(t, "content tag", i.content_tag);
    row(t, "tags moved", i.pushed);
    sbom(t, i.sbom_packages);
    const pv = i.provenance_about;
    if (pv) {
      const sig = pv.absent || (!pv.signed ? "not signed" : pv.verified === true ? "signature verified" :
        pv.verified ? "signature NOT verified: " + pv.verified : "signed; not checked (give strata report --key PUB)");
      row(t, "provenance", [pv.subject && pv.subject + "@" + pv.digest, sig].filter(Boolean));
    }
    p.append(t);
    tests(p, i.tests || []);
    log(p, i.log);
  }

  function sbom(t, s) {
    if (!s) return;
    if (s.absent) return row(t, "SBOM", s.absent);
    row(t, "SBOM", s.count + " packages");
    if (s.previous_absent) row(t, "since last published", "no earlier SBOM: " + s.previous_absent);
    if (!s.added) return;
    const parts = [];
    for (const a of s.added) parts.push("+ " + a);
    for (const r of s.removed) parts.push("− " + r);
    for (const [n, a, b] of s.changed) parts.push("~ " + n + " " + a + " → " + b);
    row(t, "since " + (s.previous || "last published"), parts.length ? parts : ["no package changed"]);
    t.lastChild.classList.add("sbom-diff");
  }

  function tests(p, list) {
    if (!list.length) return;
    const t = el("table", { class: "tests" });
    for (const x of list) {
      t.append(el("tr", { class: x.passed ? "pass" : "fail" },
        el("td", { text: x.passed ? "pass" : "FAIL" }), el("td", { text: x.name }),
        el("td", { text: x.message || "" })));
    }
    p.append(el("h3", { text: "Image tests" }), t);
  }

  function log(p, l) {
    p.append(el("h3", { text: "Log" }));
    if (!l) return p.append(el("p", { class: "missing", text: "No log folder was given." }));
    if (l.absent) return p.append(el("p", { class: "missing", text: l.absent }));
    if (l.truncated) p.append(el("p", { class: "missing", text: "The last part only; the whole log (" + l.bytes + " bytes) is " + l.file }));
    else p.append(el("p", { class: "file", text: l.file }));
    const search = el("input", { type: "search", placeholder: "search the log", class: "log-search" });
    const pre = el("div", { class: "log" });
    l.text.split("\n").forEach((line, k) => {
      const d = el("div", { class: "line" + (k === l.failing_line ? " failing" : ""), text: line });
      pre.append(d);
    });
    search.addEventListener("input", () => {
      const q = search.value.toLowerCase();
      for (const d of pre.children) d.classList.toggle("hit", !!q && d.textContent.toLowerCase().includes(q));
      const first = pre.querySelector(".hit");
      if (first) reveal(pre, first);
    });
    p.append(search, pre);
    const failing = pre.querySelector(".failing");
    if (failing) reveal(pre, failing);
  }

  // Scroll the log (only the log) to show `line`.
  function reveal(pre, line) {
    pre.scrollTop = Math.max(0, line.offsetTop - pre.offsetTop - 40);
  }

  function fromHash() {
    const m = /^#image=(.+)$/.exec(location.hash);
    if (m) panel(decodeURIComponent(m[1]));
  }

  header();
  missing();
  filters();
  graph();
  timeline();
  window.addEventListener("hashchange", fromHash);
  fromHash();
  document.body.setAttribute("data-ready", "1");
})();
