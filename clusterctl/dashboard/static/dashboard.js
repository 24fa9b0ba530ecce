/* clusterctl dashboard pages. Each page reads the same /api/v1 endpoints a script would, draws them, and then
   polls /api/v1/events?after=ID for live updates (short polling: works through any proxy, no open stream).
   Strings from the store are data: they reach the DOM through textContent, and the heatmap's canvas through
   fillText and title, never as markup. */
(function () {
  "use strict";
  var PAGE = JSON.parse(document.getElementById("page").textContent);
  var content = document.getElementById("content");
  var POLL_MS = 2000;
  var CHARTED = ["power_watts", "inlet_celsius", "exhaust_celsius", "gpu_temperature_celsius", "fan_rpm",
    "psu_input_watts"];
  var UNITS = { power_watts: "W", inlet_celsius: "°C", exhaust_celsius: "°C", gpu_temperature_celsius: "°C",
    fan_rpm: "rpm", psu_input_watts: "W" };
  var lastEvent = 0;

  function api(path) {
    return fetch("/api/v1" + path, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (r.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname); throw new Error("signed out"); }
        return r.json().then(function (body) {
          if (!r.ok) throw new Error(body.detail || ("HTTP " + r.status));
          return body;
        });
      });
  }

  function h(tag, attrs, children) {
    var node = document.createElement(tag);
    for (var k in attrs || {}) {
      if (k === "text") node.textContent = attrs[k];
      else if (k === "cls") node.className = attrs[k];
      else if (k === "width") node.style.width = attrs[k];  // CSSOM: the CSP refuses style="" attributes
      else node.setAttribute(k, attrs[k]);
    }
    (children || []).forEach(function (c) { if (c) node.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return node;
  }

  function link(href, text) { return h("a", { href: href, text: text }); }
  function nodeHref(name) { return "/nodes/" + encodeURIComponent(name); }
  function when(ts) { return ts ? new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 19) + "Z" : "–"; }
  function num(v, digits) { return v === null || v === undefined ? "–" : Number(v).toFixed(digits || 0); }
  function json(v) { return v === null || v === undefined ? "" : (typeof v === "string" ? v : JSON.stringify(v)); }
  // A verdict's findings: {check, status, detail, remediation} each (older runs stored plain text).
  function reasons(list) {
    return (list || []).map(function (r) { return typeof r === "string" ? r : r.check + ": " + r.detail; }).join("; ");
  }

  function table(columns, rows, opts) {
    var t = h("table", opts || {});
    t.appendChild(h("thead", {}, [h("tr", {}, columns.map(function (c) { return h("th", { text: c }); }))]));
    var body = h("tbody");
    rows.forEach(function (r) {
      var tr = h("tr", r.attrs || {});
      r.cells.forEach(function (c) {
        var td = h("td");
        if (c && c.nodeType) td.appendChild(c); else td.textContent = c === null || c === undefined ? "" : String(c);
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    t.appendChild(body);
    return t;
  }

  function status(text) { return h("span", { cls: "st-" + text, text: text }); }

  function show(nodes) {
    content.textContent = "";
    nodes.forEach(function (n) { if (n) content.appendChild(n); });
    content.removeAttribute("aria-busy");
    document.body.dataset.renders = String(Number(document.body.dataset.renders || 0) + 1);
    drawn();
  }

  // checks.js waits for this before its own request, so the page's main query has the server to itself.
  function drawn() {
    document.body.dataset.ready = "1";
    document.dispatchEvent(new Event("dashboard:drawn"));
  }

  function fail(err) {
    var box = document.getElementById("error");
    box.hidden = false;
    box.textContent = err.message;
    content.removeAttribute("aria-busy");
    drawn();
  }

  // -- fleet ------------------------------------------------------------------------------------------------

  var maps = {};
  var COLOURS = { ready: "#2e9d57", provisioning: "#3b7dd8", warn: "#e0a526", fail: "#d23c3c", quarantined: "#7b3fb8",
    unknown: "#b8bcc4" };

  /* Where a node's square is on the page (for "find node" and for tests): {hall, x, y} in canvas pixels. */
  window.locateNode = function (name) {
    for (var hall in maps) { var p = maps[hall].locate(name); if (p) return { hall: hall, x: p.x, y: p.y }; }
    return null;
  };

  function drawFleet(data) {
    var began = performance.now();
    var counts = h("div", { cls: "counts", id: "counts" });
    Object.keys(data.counts).forEach(function (state) {
      counts.appendChild(h("div", { cls: "count s-" + state, id: "count-" + state, "data-count": data.counts[state] },
        [h("b", { text: String(data.counts[state]) }), state]));
    });
    counts.appendChild(h("div", { cls: "count", id: "count-total" }, [h("b", { text: String(data.total) }), "nodes"]));
    var parts = [counts];
    if (data.run) {
      var r = data.run;
      parts.push(h("h2", { text: "Current run" }));
      parts.push(h("p", { id: "run" }, [
        r.kind === "burnin" ? link("/runs/" + r.id, "Run " + r.id) : h("span", { text: "Run " + r.id }),
        " (" + r.kind + "): ", status(r.status), ", started " + when(r.started_at)]));
      var stages = Object.keys(data.progress || {});
      if (stages.length) {
        var cols = ["pending", "running", "done", "failed", "skipped"];
        parts.push(table(["stage"].concat(cols, ["progress"]), stages.map(function (s) {
          var c = data.progress[s], total = 0, finished = (c.done || 0) + (c.skipped || 0);
          for (var k in c) total += c[k];
          var bar = h("div", { cls: "bar" }, [h("span", { width: (100 * finished / total).toFixed(1) + "%" })]);
          return { cells: [s].concat(cols.map(function (k) { return c[k] || 0; }), [bar]) };
        }), { id: "progress" }));
      }
    }
    if (data.controllers && data.controllers.length) {
      parts.push(h("h2", { text: "Controllers" }));
      parts.push(table(["controller", "job", "run", "heartbeat", "nodes"], data.controllers.map(function (c) {
        return { cells: [c.controller, c.job, c.run === null ? "" : String(c.run), when(c.heartbeat_at),
          c.holding + (c.holding ? ": " + c.nodes : "")] };
      }), { id: "controllers" }));
    }
    var runs = h("div", { id: "runs" });
    parts.push(runs);
    api("/runs?limit=8").then(function (list) {
      if (!list.length) return;
      runs.appendChild(h("h2", { text: "Recent runs" }));
      runs.appendChild(table(["run", "kind", "status", "started", "finished"], list.map(function (r) {
        return { cells: [r.kind === "burnin" ? link("/runs/" + r.id, String(r.id)) : String(r.id), r.kind, status(r.status),
          when(r.started_at), when(r.finished_at)] };
      })));
    });
    var map = h("div", { id: "heatmap" });
    parts.push(h("h2", { text: "Nodes by hall and rack" }), map);
    show(parts);
    maps = {};
    data.halls.forEach(function (hall) {
      var section = h("section", { cls: "hall" }, [h("h3", { text: "Hall " + hall.name })]);
      map.appendChild(section);
      maps[hall.name] = Heatmap.draw(section, hall, COLOURS);
    });
    document.body.dataset.renderMs = (performance.now() - began).toFixed(0);
    // Since navigation began (performance's time origin), once the frame with the heatmap is painted.
    requestAnimationFrame(function () {
      setTimeout(function () { document.body.dataset.paintedMs = performance.now().toFixed(0); }, 0);
    });
  }

  function loadFleet() {
    var began = performance.now();
    return api("/fleet").then(function (data) {
      document.body.dataset.fetchMs = (performance.now() - began).toFixed(0);
      drawFleet(data);
    });
  }

  // -- rack -------------------------------------------------------------------------------------------------

  function drawRack(r) {
    var parts = [];
    var budget = r.power_budget_w, used = r.power_watts;
    var pct = budget && used !== null ? Math.min(100, 100 * used / budget) : 0;
    parts.push(h("p", { id: "rack-power" }, [
      "Power " + num(used) + " W of " + (budget ? budget + " W budget" : "no budget") +
      " (" + r.power_reporting + " of " + r.nodes.length + " nodes reporting)"]));
    parts.push(h("div", { id: "power-bar", cls: "bar" + (budget && used > budget ? " over" : "") }, [h("span", { width: pct.toFixed(1) + "%" })]));
    parts.push(h("p", { cls: "muted", text: "Hall " + r.hall + ", row " + r.row }));
    var withInlet = r.nodes.filter(function (n) { return n.inlet_celsius !== null; });
    if (withInlet.length) {
      parts.push(Chart.histogram(withInlet.map(function (n) { return { value: n.inlet_celsius, flagged: n.inlet_celsius > 35 }; }),
        { title: "Inlet temperatures", unit: "°C", bins: 12, width: 360 }));
    }
    parts.push(h("h2", { text: "Nodes" }));
    parts.push(table(["node", "state", "stage", "power W", "inlet °C", "exhaust °C"], r.nodes.map(function (n) {
      return { attrs: { "data-node": n.name }, cells: [link(nodeHref(n.name), n.name), h("span", { cls: "badge s-" + n.state, text: n.state }),
        n.stage || "", num(n.power_watts), num(n.inlet_celsius, 1), num(n.exhaust_celsius, 1)] };
    }), { id: "rack-nodes" }));
    show(parts);
  }

  function loadRack() { return api("/racks/" + encodeURIComponent(PAGE.rack)).then(drawRack); }

  // -- node -------------------------------------------------------------------------------------------------

  function facts(inv) {
    var rows = [];
    ["group", "role", "hall", "row", "rack", "slot", "bmc", "bmc_vendor", "host", "gpus", "gpu_model", "bios_profile", "source"]
      .forEach(function (k) { if (inv[k] !== null && inv[k] !== undefined) rows.push({ cells: [k, inv[k]] }); });
    ["hardware", "software"].forEach(function (k) { rows.push({ cells: [k, json(inv[k])] }); });
    return table(["fact", "value"], rows, { id: "facts" });
  }

  function drawNode(n) {
    var parts = [h("p", {}, [h("span", { id: "node-state", cls: "badge s-" + n.state, text: n.state }),
      n.stage ? " stage " + n.stage : "", n.flag && n.flag.quarantined ? " · quarantined: " + (n.flag.reason || "") : ""])];
    parts.push(h("h2", { text: "Checks" }));
    parts.push(n.checks.length ? table(["check", "result", "detail", "remediation", "when"], n.checks.map(function (c) {
      return { attrs: { cls: "check-" + c.status, "data-check": c.check }, cells: [c.check, status(c.status), c.detail || "", c.hint || "", when(c.ts)] };
    }), { id: "checks" }) : h("p", { cls: "muted", text: "No checks recorded." }));
    parts.push(h("h2", { text: "Firmware" }));
    parts.push(table(["component", "target", "installed", ""], n.firmware.map(function (f) {
      return { cells: [f.component, f.target || "–", f.installed || "not reported", f.ok === null ? "" : status(f.ok ? "pass" : "fail")] };
    }), { id: "firmware" }));
    parts.push(h("h2", { text: "Telemetry" }));
    var charts = h("div", { cls: "grid", id: "charts" });
    parts.push(charts);
    parts.push(h("h2", { text: "Stages" }));
    parts.push(table(["stage", "status", "attempt", "run", "reason", "updated"], n.stages.map(function (s) {
      return { cells: [s.stage, status(s.status), s.attempt, s.run_id, s.reason || "", when(s.updated_at)] };
    }), { id: "stages" }));
    if (n.burnin.length) {
      parts.push(h("h2", { text: "Burn-in" }));
      parts.push(table(["run", "verdict", "reasons", "metrics"], n.burnin.map(function (b) {
        return { cells: [link("/runs/" + b.run_id, String(b.run_id)), status(b.status), reasons(b.reasons), json(b.metrics)] };
      }), { id: "burnin" }));
    }
    if (n.inventory) { parts.push(h("h2", { text: "Inventory" })); parts.push(facts(n.inventory)); }
    parts.push(h("h2", { text: "Events" }));
    parts.push(eventTable(n.events.slice().reverse(), "node-events"));
    show(parts);
    n.metrics.filter(function (m) { return CHARTED.indexOf(m) >= 0; }).forEach(function (m) {
      api("/nodes/" + encodeURIComponent(n.name) + "/telemetry?metric=" + encodeURIComponent(m)).then(function (t) {
        charts.appendChild(Chart.line(t.series, { title: m, unit: UNITS[m], x: "time" }));
      });
    });
  }

  function loadNode() { return api("/nodes/" + encodeURIComponent(PAGE.node)).then(drawNode); }

  // -- burn-in run ------------------------------------------------------------------------------------------

  function drawRun(d) {
    var parts = [h("p", {}, [d.run.kind + " · ", status(d.run.status), " · started " + when(d.run.started_at)])];
    parts.push(h("p", { id: "verdicts", text: Object.keys(d.counts).map(function (k) { return d.counts[k] + " " + k; }).join(", ") || "no verdicts yet" }));
    var failed = {};
    d.results.forEach(function (r) { if (r.status !== "pass") failed[r.node] = true; });
    var speeds = d.throughput.nodes;
    if (speeds.length) {
      parts.push(Chart.histogram(speeds.map(function (s) { return { value: s.tokens_per_s, flagged: failed[s.node] || (s.ratio !== null && s.ratio < 0.85) }; }),
        { title: "Per-node throughput (median " + num(d.throughput.median) + ")", unit: "tokens/s" }));
      var slow = speeds.filter(function (s) { return s.ratio !== null && s.ratio < 0.85; });
      if (slow.length) {
        parts.push(h("h3", { text: "Stragglers" }));
        parts.push(table(["node", "tokens/s", "of median"], slow.map(function (s) {
          return { cells: [link(nodeHref(s.node), s.node), num(s.tokens_per_s), (100 * s.ratio).toFixed(0) + "%"] };
        }), { id: "stragglers" }));
      }
    }
    if (d.loss.length) {
      parts.push(Chart.line(d.loss.slice(0, 64).map(function (c) { return { label: c.node, points: c.points }; }),
        { title: "Loss by step (mean over ranks)", width: 620, height: 220 }));
    }
    parts.push(h("h2", { text: "Verdicts" }));
    var results = d.results.slice().sort(function (a, b) { return (a.status === "pass") - (b.status === "pass"); });
    parts.push(table(["node", "verdict", "reasons"], results.map(function (r) {
      return { cells: [link(nodeHref(r.node), r.node), status(r.status), reasons(r.reasons)] };
    }), { id: "results" }));
    if (d.quarantined.length) {
      parts.push(h("h2", { text: "Quarantined" }));
      parts.push(table(["node", "reason", "since", "by"], d.quarantined.map(function (q) {
        return { cells: [link(nodeHref(q.node), q.node), q.reason || "", when(q.since), q.source || ""] };
      }), { id: "quarantined" }));
    }
    show(parts);
  }

  function loadRun() { return api("/runs/" + PAGE.run + "/burnin").then(drawRun); }

  // -- events -----------------------------------------------------------------------------------------------

  function eventRow(e) {
    return { attrs: { "data-event": e.id }, cells: [e.id, when(e.ts), e.node ? link(nodeHref(e.node), e.node) : "", e.stage || "",
      e.kind, e.run_id || "", json(e.payload)] };
  }

  function eventTable(events, id) {
    return table(["#", "time", "node", "stage", "kind", "run", "payload"], events.map(eventRow), { id: id });
  }

  function eventQuery() {
    var q = [];
    ["node", "kind", "stage"].forEach(function (k) {
      var input = document.getElementById("filter-" + k);
      if (input && input.value) q.push(k + "=" + encodeURIComponent(input.value));
    });
    return q.join("&");
  }

  function drawEvents(d) {
    var filters = h("form", { cls: "filters", id: "filters" });
    ["node", "kind", "stage"].forEach(function (k) {
      var input = h("input", { id: "filter-" + k, name: k, placeholder: k });
      input.value = (PAGE.filters || {})[k] || "";
      filters.appendChild(input);
    });
    filters.appendChild(h("button", { type: "submit", text: "Filter" }));
    filters.addEventListener("submit", function (ev) {
      ev.preventDefault();
      PAGE.filters = {};
      ["node", "kind", "stage"].forEach(function (k) { PAGE.filters[k] = document.getElementById("filter-" + k).value; });
      history.replaceState(null, "", "/events?" + eventQuery());
      loadEvents();
    });
    lastEvent = d.last_id;
    show([filters, eventTable(d.events.slice().reverse(), "events")]);
  }

  function loadEvents() {
    var q = [];
    ["node", "kind", "stage"].forEach(function (k) { var v = (PAGE.filters || {})[k]; if (v) q.push(k + "=" + encodeURIComponent(v)); });
    return api("/events?" + q.join("&")).then(drawEvents);
  }

  // -- live updates -----------------------------------------------------------------------------------------

  var LOADERS = { fleet: loadFleet, rack: loadRack, node: loadNode, run: loadRun, events: loadEvents };
  var pending = false;
  var RELOAD_MS = 5000;
  var lastLoad = Date.now();

  function onNewEvents(events) {
    if (PAGE.kind === "events") {
      var body = document.querySelector("#events tbody");
      var q = eventQuery();
      events.forEach(function (e) {
        if (q && !matches(e)) return;
        var row = table([], [eventRow(e)]).querySelector("tbody tr");
        row.className = "new";
        if (body) body.insertBefore(row, body.firstChild);
      });
      document.body.dataset.renders = String(Number(document.body.dataset.renders || 0) + 1);
      return;
    }
    if (PAGE.kind === "node" && !events.some(function (e) { return e.node === PAGE.node || !e.node; })) return;
    if (pending) return;
    // At most one reload per RELOAD_MS: during a provisioning wave events arrive every poll, and every open
    // fleet page re-reading 12,500 nodes each time would be the dashboard's biggest load on the store.
    pending = true;
    setTimeout(function () {
      lastLoad = Date.now();
      LOADERS[PAGE.kind]().then(function () { pending = false; }, function () { pending = false; });
    }, Math.max(0, lastLoad + RELOAD_MS - Date.now()));
  }

  function matches(e) {
    var f = PAGE.filters || {};
    return (!f.node || e.node === f.node) && (!f.kind || e.kind === f.kind) && (!f.stage || e.stage === f.stage);
  }

  function poll() {
    api("/events?after=" + lastEvent + "&limit=500").then(function (d) {
      document.getElementById("live").classList.add("on");
      if (d.events.length) { lastEvent = d.last_id; document.body.dataset.lastEvent = String(lastEvent); onNewEvents(d.events); }
    }, function () { document.getElementById("live").classList.remove("on"); })
      .then(function () { setTimeout(poll, POLL_MS); });
  }

  LOADERS[PAGE.kind]().then(function () {
    if (lastEvent) return;
    return api("/events?limit=1").then(function (d) { lastEvent = d.last_id; });
  }).then(function () { setTimeout(poll, POLL_MS); }, fail);
})();
