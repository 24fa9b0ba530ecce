/* The fleet heatmap on one <canvas> per hall: 12,500 nodes are 12,500 fillRect calls (milliseconds), where
   12,500 DOM elements cost hundreds of milliseconds of style and layout. Racks are boxes laid out left to right;
   a node is a square in its rack box, coloured by state. Clicking a square opens the node, clicking a rack's
   label opens the rack; hovering shows the node and its state.
   Public: Heatmap.draw(container, hall, colours) -> {locate(name) -> {x, y} | null}; names come in as data only
   (fillText, title), never as markup. */
(function () {
  "use strict";
  var CELL = 12, GAP = 1, PAD = 3, LABEL = 13, RACK_GAP = 6, MAX_COLS = 10;

  function draw(container, hall, colours) {
    var perRack = 1;
    hall.racks.forEach(function (r) { perRack = Math.max(perRack, r.nodes.length); });
    var cols = Math.min(MAX_COLS, perRack);
    var rows = Math.ceil(perRack / cols);
    var boxW = PAD * 2 + cols * (CELL + GAP) - GAP;
    var boxH = PAD * 2 + LABEL + rows * (CELL + GAP) - GAP;
    var width = Math.max(boxW, container.clientWidth || 1200);
    var perLine = Math.max(1, Math.floor((width + RACK_GAP) / (boxW + RACK_GAP)));
    var lines = Math.ceil(hall.racks.length / perLine);
    var height = Math.max(1, lines * (boxH + RACK_GAP) - RACK_GAP);
    var dpr = window.devicePixelRatio || 1;
    var canvas = document.createElement("canvas");
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
    canvas.style.width = width + "px";
    canvas.style.height = height + "px";
    canvas.className = "heatmap";
    canvas.dataset.hall = hall.name;
    var ctx = canvas.getContext("2d", { alpha: false });
    ctx.scale(dpr, dpr);
    ctx.fillStyle = "#f7f7f8";
    ctx.fillRect(0, 0, width, height);
    ctx.font = "10px system-ui, sans-serif";
    ctx.textBaseline = "top";
    var where = {};
    hall.racks.forEach(function (rack, i) {
      var bx = (i % perLine) * (boxW + RACK_GAP), by = Math.floor(i / perLine) * (boxH + RACK_GAP);
      ctx.fillStyle = "#ffffff";
      ctx.fillRect(bx, by, boxW, boxH);
      ctx.fillStyle = "#1d1f23";
      ctx.fillText(rack.name, bx + PAD, by + PAD, boxW - 2 * PAD);
      rack.nodes.forEach(function (n, k) {
        var x = bx + PAD + (k % cols) * (CELL + GAP), y = by + PAD + LABEL + Math.floor(k / cols) * (CELL + GAP);
        ctx.fillStyle = colours[n[1]] || colours.unknown;
        ctx.fillRect(x, y, CELL, CELL);
        where[n[0]] = { x: x + CELL / 2, y: y + CELL / 2 };
      });
    });

    function hit(ev) {
      var rect = canvas.getBoundingClientRect();
      var x = ev.clientX - rect.left, y = ev.clientY - rect.top;
      var col = Math.floor(x / (boxW + RACK_GAP)), line = Math.floor(y / (boxH + RACK_GAP));
      var rack = hall.racks[line * perLine + col];
      if (!rack || col >= perLine) return null;
      var rx = x - col * (boxW + RACK_GAP) - PAD, ry = y - line * (boxH + RACK_GAP) - PAD;
      if (rx < 0 || rx >= boxW - 2 * PAD || ry < 0) return null;
      if (ry < LABEL) return { rack: rack };
      var cx = Math.floor(rx / (CELL + GAP)), cy = Math.floor((ry - LABEL) / (CELL + GAP));
      var node = cx < cols ? rack.nodes[cy * cols + cx] : null;
      return node ? { rack: rack, node: node } : { rack: rack };
    }

    canvas.addEventListener("click", function (ev) {
      var found = hit(ev);
      if (found && found.node) location.href = "/nodes/" + encodeURIComponent(found.node[0]);
      else if (found) location.href = "/racks/" + encodeURIComponent(found.rack.name);
    });
    canvas.addEventListener("mousemove", function (ev) {
      var found = hit(ev);
      var tip = !found ? "" : found.node
        ? found.node[0] + ": " + found.node[1] + (found.node[2] ? " (" + found.node[2] + ")" : "") + " · rack " + found.rack.name
        : "rack " + found.rack.name;
      if (canvas.title !== tip) canvas.title = tip;
      canvas.style.cursor = found ? "pointer" : "default";
    });
    container.appendChild(canvas);
    return { canvas: canvas, locate: function (name) { return where[name] || null; } };
  }

  window.Heatmap = { draw: draw };
})();
