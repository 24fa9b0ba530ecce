/* A tiny SVG chart library for the dashboard (line charts and histograms), so no CDN and no build step.
   Public: Chart.line(series, {title, unit, width, height, x}) and Chart.histogram(values, {...}); both return an
   element. Text goes in through textContent only, never innerHTML. */
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var PALETTE = ["#3b7dd8", "#d23c3c", "#2e9d57", "#e0a526", "#7b3fb8", "#1aa3a3", "#c2418f", "#6b7078"];

  function el(name, attrs, text) {
    var node = document.createElementNS(NS, name);
    for (var k in attrs) node.setAttribute(k, attrs[k]);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function extent(values) {
    var lo = Infinity, hi = -Infinity;
    values.forEach(function (v) { if (v !== null && isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; } });
    if (lo === Infinity) return [0, 1];
    if (lo === hi) return [lo - 1, hi + 1];
    return [lo, hi];
  }

  function fmt(v) {
    var a = Math.abs(v);
    return a >= 1e6 ? (v / 1e6).toFixed(1) + "M" : a >= 1e4 ? (v / 1e3).toFixed(0) + "k" : a >= 100 ? v.toFixed(0) : v.toFixed(1);
  }

  function frame(opts) {
    var box = document.createElement("div");
    box.className = "chart";
    var title = document.createElement("div");
    title.className = "title";
    title.textContent = opts.title + (opts.unit ? " (" + opts.unit + ")" : "");
    box.appendChild(title);
    return box;
  }

  function line(series, opts) {
    opts = opts || {};
    var W = opts.width || 420, H = opts.height || 160, L = 44, B = 18, T = 6, R = 6;
    var xs = [], ys = [];
    series.forEach(function (s) { s.points.forEach(function (p) { xs.push(p[0]); ys.push(p[1]); }); });
    var xr = extent(xs), yr = extent(ys);
    var sx = function (x) { return L + (x - xr[0]) / (xr[1] - xr[0]) * (W - L - R); };
    var sy = function (y) { return H - B - (y - yr[0]) / (yr[1] - yr[0]) * (H - B - T); };
    var svg = el("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img" });
    svg.appendChild(el("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#999" }));
    svg.appendChild(el("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#999" }));
    svg.appendChild(el("text", { x: L - 4, y: T + 10, "text-anchor": "end", "font-size": 10 }, fmt(yr[1])));
    svg.appendChild(el("text", { x: L - 4, y: H - B, "text-anchor": "end", "font-size": 10 }, fmt(yr[0])));
    var xlabel = opts.x === "time"
      ? function (v) { return new Date(v * 1000).toISOString().slice(11, 16); } : fmt;
    svg.appendChild(el("text", { x: L, y: H - 4, "font-size": 10 }, xlabel(xr[0])));
    svg.appendChild(el("text", { x: W - R, y: H - 4, "text-anchor": "end", "font-size": 10 }, xlabel(xr[1])));
    series.forEach(function (s, i) {
      var d = s.points.filter(function (p) { return p[1] !== null; })
        .map(function (p) { return sx(p[0]).toFixed(1) + "," + sy(p[1]).toFixed(1); }).join(" ");
      var poly = el("polyline", { points: d, fill: "none", stroke: PALETTE[i % PALETTE.length], "stroke-width": 1.5 });
      poly.appendChild(el("title", {}, s.label));
      svg.appendChild(poly);
      if (s.points.length === 1) {
        svg.appendChild(el("circle", { cx: sx(s.points[0][0]), cy: sy(s.points[0][1]), r: 2.5,
          fill: PALETTE[i % PALETTE.length] }));
      }
    });
    var box = frame(opts);
    box.appendChild(svg);
    return box;
  }

  /* values: [{label, value, flagged}] → bars by bucket; flagged values (stragglers) are drawn red. */
  function histogram(values, opts) {
    opts = opts || {};
    var W = opts.width || 520, H = opts.height || 160, L = 34, B = 18, T = 6, bins = opts.bins || 30;
    var r = extent(values.map(function (v) { return v.value; }));
    var counts = [], bad = [];
    for (var i = 0; i < bins; i++) { counts.push(0); bad.push(0); }
    values.forEach(function (v) {
      var k = Math.min(bins - 1, Math.floor((v.value - r[0]) / (r[1] - r[0]) * bins));
      counts[k]++; if (v.flagged) bad[k]++;
    });
    var top = Math.max.apply(null, counts.concat([1]));
    var bw = (W - L) / bins;
    var svg = el("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img" });
    counts.forEach(function (c, k) {
      if (!c) return;
      var h = c / top * (H - B - T);
      var rect = el("rect", { x: L + k * bw + 1, y: H - B - h, width: Math.max(1, bw - 2), height: h,
        fill: bad[k] ? "#d23c3c" : "#3b7dd8" });
      rect.appendChild(el("title", {}, c + " node(s) at " + fmt(r[0] + k * (r[1] - r[0]) / bins) + "+"));
      svg.appendChild(rect);
    });
    svg.appendChild(el("text", { x: L - 4, y: T + 10, "text-anchor": "end", "font-size": 10 }, String(top)));
    svg.appendChild(el("text", { x: L, y: H - 4, "font-size": 10 }, fmt(r[0])));
    svg.appendChild(el("text", { x: W, y: H - 4, "text-anchor": "end", "font-size": 10 }, fmt(r[1])));
    var box = frame(opts);
    box.appendChild(svg);
    return box;
  }

  window.Chart = { line: line, histogram: histogram };
})();
