/* The periodic checks on the dashboard (clusterctl/dashboard/checks.py): on a node's page, one SVG chart per metric
   of its check history with the peers' band (median ± the judge's width) and the rounds a regression was named in
   red; on the fleet page, the current regressions and the early-warning list. Its own section (#periodic) beside
   the page's #content, drawn once per page load. Text goes in through textContent only. */
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var PAGE = JSON.parse(document.getElementById("page").textContent);
  var box = document.getElementById("periodic");
  if (!box || (PAGE.kind !== "node" && PAGE.kind !== "fleet")) return;

  function get(path) {
    return fetch("/api/v1" + path, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.json().then(function (b) { if (!r.ok) throw new Error(b.detail || "HTTP " + r.status); return b; }); });
  }
  function h(tag, attrs, children) {
    var node = document.createElement(tag);
    for (var k in attrs || {}) { if (k === "text") node.textContent = attrs[k]; else if (k === "cls") node.className = attrs[k]; else node.setAttribute(k, attrs[k]); }
    (children || []).forEach(function (c) { if (c) node.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return node;
  }
  function s(name, attrs, text) {
    var node = document.createElementNS(NS, name);
    for (var k in attrs) node.setAttribute(k, attrs[k]);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function day(ts) { return ts ? new Date(ts * 1000).toISOString().slice(0, 16).replace("T", " ") + "Z" : "–"; }
  function fmt(v) { var a = Math.abs(v); return a >= 1e4 ? (v / 1e3).toFixed(0) + "k" : a >= 100 ? v.toFixed(0) : v.toFixed(1); }
  function table(id, columns, rows) {
    var t = h("table", { id: id });
    t.appendChild(h("thead", {}, [h("tr", {}, columns.map(function (c) { return h("th", { text: c }); }))]));
    var body = h("tbody");
    rows.forEach(function (r) {
      body.appendChild(h("tr", r.attrs, r.cells.map(function (c) { return h("td", {}, [c && c.nodeType ? c : String(c === null || c === undefined ? "" : c)]); })));
    });
    t.appendChild(body);
    return t;
  }
  function nodeLink(name) { return h("a", { href: "/nodes/" + encodeURIComponent(name), text: name }); }

  /* One metric: the band as a grey polygon, the node's figures as a line, regression rounds as red dots. */
  function chart(name, m) {
    var W = 420, H = 170, L = 46, B = 18, T = 8, R = 8;
    var xs = [], ys = [];
    m.points.forEach(function (p) { xs.push(p[0]); ys.push(p[1]); });
    m.band.forEach(function (b) { xs.push(b[0]); ys.push(b[2], b[3]); });
    var x0 = Math.min.apply(null, xs), x1 = Math.max.apply(null, xs), y0 = Math.min.apply(null, ys), y1 = Math.max.apply(null, ys);
    if (x0 === x1) { x0 -= 1; x1 += 1; }
    if (y0 === y1) { y0 -= 1; y1 += 1; }
    var sx = function (x) { return (L + (x - x0) / (x1 - x0) * (W - L - R)).toFixed(1); };
    var sy = function (y) { return (H - B - (y - y0) / (y1 - y0) * (H - B - T)).toFixed(1); };
    var svg = s("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img", "data-metric": name });
    svg.appendChild(s("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#999" }));
    svg.appendChild(s("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#999" }));
    svg.appendChild(s("text", { x: L - 4, y: T + 8, "text-anchor": "end", "font-size": 10 }, fmt(y1)));
    svg.appendChild(s("text", { x: L - 4, y: H - B, "text-anchor": "end", "font-size": 10 }, fmt(y0)));
    svg.appendChild(s("text", { x: L, y: H - 4, "font-size": 10 }, day(x0)));
    svg.appendChild(s("text", { x: W - R, y: H - 4, "text-anchor": "end", "font-size": 10 }, day(x1)));
    if (m.band.length) {
      var upper = m.band.map(function (b) { return sx(b[0]) + "," + sy(b[3]); });
      var lower = m.band.slice().reverse().map(function (b) { return sx(b[0]) + "," + sy(b[2]); });
      var band = s("polygon", { points: upper.concat(lower).join(" "), fill: "#3b7dd8", "fill-opacity": 0.15, stroke: "none" });
      band.setAttribute("class", "band");
      band.appendChild(s("title", {}, "peers' band: median ± the judge's width"));
      svg.appendChild(band);
      var med = s("polyline", { points: m.band.map(function (b) { return sx(b[0]) + "," + sy(b[1]); }).join(" "), fill: "none",
        stroke: "#6b7078", "stroke-dasharray": "3 3", "stroke-width": 1 });
      med.setAttribute("class", "median");
      svg.appendChild(med);
    }
    var line = s("polyline", { points: m.points.map(function (p) { return sx(p[0]) + "," + sy(p[1]); }).join(" "), fill: "none",
      stroke: "#20232a", "stroke-width": 1.5 });
    line.appendChild(s("title", {}, m.words));
    svg.appendChild(line);
    var flagged = {};
    m.regressions.forEach(function (ts) { flagged[ts] = true; });
    m.points.forEach(function (p) {
      if (!flagged[p[0]]) return;
      var dot = s("circle", { cx: sx(p[0]), cy: sy(p[1]), r: 3.5, fill: "#d23c3c" });
      dot.setAttribute("class", "regression");
      dot.appendChild(s("title", {}, "regression named on " + day(p[0]) + ": " + fmt(p[1]) + " " + m.unit));
      svg.appendChild(dot);
    });
    var frame = h("div", { cls: "chart", "data-metric": name }, [h("div", { cls: "title", text: m.words + (m.unit ? " (" + m.unit + ")" : "") + " · " + m.change })]);
    frame.appendChild(svg);
    return frame;
  }

  function drawNode(d) {
    var names = Object.keys(d.series).filter(function (k) { return d.series[k].kind !== "info"; });
    var parts = [h("h2", { text: "Check history since " + d.since_iso.slice(0, 10) })];
    if (!names.length) parts.push(h("p", { cls: "muted", text: "No check round has measured this node yet (clusterctl check FILE)." }));
    else {
      parts.push(h("p", { cls: "muted", text: "Shaded: " + d.band.rule + " (peer_mads " + d.band.peer_mads + ", peer_share " +
        d.band.peer_share + "). Red dots: rounds in which a regression was named." }));
      parts.push(h("div", { cls: "grid", id: "check-charts" }, names.map(function (k) { return chart(k, d.series[k]); })));
    }
    if (d.regressions.length) {
      parts.push(h("h3", { text: "Regressions" }));
      parts.push(table("node-regressions", ["when", "metric", "judge", "change", "since", "detail", "suggested action"],
        d.regressions.map(function (f) { return { cells: [day(f.ts), f.metric, f.judge, f.change_words, day(f.since), f.detail, f.remediation] }; })));
    }
    return parts;
  }

  function drawFleet(d) {
    var parts = [h("h2", { text: "Periodic checks" })];
    parts.push(h("h3", { text: "Current regressions (" + d.regressions.length + ")" }));
    parts.push(d.regressions.length ? table("regressions", ["node", "metric", "change", "since", "suggested action"], d.regressions.map(function (f) {
      return { attrs: { "data-node": f.node, "data-metric": f.metric }, cells: [nodeLink(f.node), f.metric, f.change_words + " (" + f.judge + ")", day(f.since), f.action] };
    })) : h("p", { id: "regressions", cls: "muted", text: d.nodes_checked ? "None: the latest round named no regression." : "No check round yet." }));
    parts.push(h("h3", { text: "Early warning, worst first" }));
    parts.push(d.early_warning.length ? table("early-warning", ["node", "score", "why"], d.early_warning.map(function (w) {
      return { attrs: { "data-node": w.node }, cells: [nodeLink(w.node), w.score.toFixed(2), w.explanation] };
    })) : h("p", { id: "early-warning", cls: "muted", text: "No counter or figure is trending." }));
    return parts;
  }

  /* After the page's own view is drawn (dashboard.js's "dashboard:drawn"): on the fleet page of 12,500 nodes both
     queries at once would take turns on the server's one interpreter lock and delay the heatmap. */
  function start() {
    var load = PAGE.kind === "node" ? get("/nodes/" + encodeURIComponent(PAGE.node) + "/checks").then(drawNode) : get("/checks").then(drawFleet);
    load.then(function (parts) {
      parts.forEach(function (p) { box.appendChild(p); });
      box.hidden = false;
    }, function (err) {
      box.appendChild(h("p", { cls: "error", text: "Check history: " + err.message }));
      box.hidden = false;
    }).then(function () { document.body.dataset.checksReady = "1"; });
  }
  if (document.body.dataset.ready) start(); else document.addEventListener("dashboard:drawn", start, { once: true });
})();
