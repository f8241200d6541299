// paperkb static site: sortable and filterable tables, search, graph pan and zoom.
// Hand-written, no library; note text is only ever set with textContent, never as HTML.
(function () {
  "use strict";

  function cellValue(row, i) {
    var cell = row.cells[i];
    var text = cell ? cell.textContent.trim() : "";
    var num = parseFloat(text);
    return isNaN(num) || !/^-?[\d.]+$/.test(text) ? text.toLowerCase() : num;
  }

  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.tHead ? table.tHead.rows[0].cells : [];
    Array.prototype.forEach.call(heads, function (th, i) {
      th.addEventListener("click", function () {
        var asc = !th.classList.contains("asc");
        Array.prototype.forEach.call(heads, function (h) { h.classList.remove("asc", "desc"); });
        th.classList.add(asc ? "asc" : "desc");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = cellValue(a, i), y = cellValue(b, i);
          return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });

  document.querySelectorAll("input.filter").forEach(function (input) {
    var table = document.getElementById(input.getAttribute("data-filter-for"));
    if (!table) return;
    input.addEventListener("input", function () {
      var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
      Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
        var text = row.textContent.toLowerCase();
        row.style.display = words.every(function (w) { return text.indexOf(w) >= 0; }) ? "" : "none";
      });
    });
  });

  var search = document.getElementById("search");
  var results = document.getElementById("search-results");
  if (search && results && window.PAPERKB_SEARCH) {
    var docs = window.PAPERKB_SEARCH;
    var run = function () {
      var words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
      results.textContent = "";
      if (!words.length) return;
      var hits = [];
      for (var i = 0; i < docs.length && hits.length < 50; i++) {
        var d = docs[i], title = d.t.toLowerCase(), all = title + " " + d.x;
        if (words.every(function (w) { return all.indexOf(w) >= 0; })) {
          hits.push([words.every(function (w) { return title.indexOf(w) >= 0; }) ? 0 : 1, d]);
        }
      }
      hits.sort(function (a, b) { return a[0] - b[0]; });
      hits.forEach(function (h) {
        var li = document.createElement("li");
        var a = document.createElement("a");
        a.href = h[1].u;
        a.textContent = h[1].t;
        li.appendChild(a);
        results.appendChild(li);
      });
      if (!hits.length) {
        var none = document.createElement("li");
        none.textContent = "No note matches.";
        results.appendChild(none);
      }
    };
    search.addEventListener("input", run);
    if (search.value) run();
  }

  var holder = document.getElementById("graph");
  var svg = holder && holder.querySelector("svg");
  if (svg) {
    var vb = svg.viewBox.baseVal;
    var box = {x: vb.x, y: vb.y, w: vb.width, h: vb.height};
    var apply = function () { svg.setAttribute("viewBox", box.x + " " + box.y + " " + box.w + " " + box.h); };
    svg.removeAttribute("width");
    svg.removeAttribute("height");
    holder.addEventListener("wheel", function (e) {
      e.preventDefault();
      var r = svg.getBoundingClientRect();
      var fx = (e.clientX - r.left) / r.width, fy = (e.clientY - r.top) / r.height;
      var k = e.deltaY < 0 ? 0.85 : 1 / 0.85;
      var nw = box.w * k, nh = box.h * k;
      box.x += (box.w - nw) * fx; box.y += (box.h - nh) * fy; box.w = nw; box.h = nh;
      apply();
    }, {passive: false});
    var drag = null, moved = false;
    holder.addEventListener("mousedown", function (e) { drag = {x: e.clientX, y: e.clientY}; moved = false; });
    window.addEventListener("mouseup", function () { drag = null; });
    window.addEventListener("mousemove", function (e) {
      if (!drag) return;
      var r = svg.getBoundingClientRect();
      var dx = (e.clientX - drag.x) * box.w / r.width, dy = (e.clientY - drag.y) * box.h / r.height;
      if (Math.abs(e.clientX - drag.x) + Math.abs(e.clientY - drag.y) > 3) moved = true;
      box.x -= dx; box.y -= dy; drag = {x: e.clientX, y: e.clientY};
      apply();
    });
    holder.addEventListener("click", function (e) { if (moved) { e.preventDefault(); moved = false; } }, true);
  }
})();
