// The page of an experiment's results: a table, learning curves, the metric against a
// parameter, a heatmap and parallel coordinates. Every value and name goes into the
// document as text (textContent), never as markup. Served live, it asks its own server
// for new rows every second; written as a report, its data is in the page.
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("sp-config").textContent);
  var token = new URLSearchParams(location.search).get("token") || "";
  var MAX_ROWS = 500, MAX_BANDS = 300, MAX_HUES = 10, MAX_LINES = 400;
  var PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                 "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  var experiments = [], logs = {}, current = 0, version = 0, charting = 0;
  var state = { sort: null, up: true, filters: {}, metric: null, step: null, colour: null,
                x: null, y: null, selected: null };

  function $(id) { return document.getElementById(id); }
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function fmt(v) {
    if (v === null || v === undefined) return "";
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(+v.toPrecision(4));
    if (typeof v === "boolean") return v ? "true" : "false";
    return String(v);
  }
  function api(path) { return path + (path.indexOf("?") < 0 ? "?" : "&") + "token=" + encodeURIComponent(token); }

  // -- the data ------------------------------------------------------------------------
  // exp.settings: one row per setting, by column; exp.series: the rows per step of the
  // settings that have several, by column, "setting" the position of theirs.
  function index(exp) {
    var ids = exp.settings.id || [], pos = new Map(), curves = new Map();
    for (var i = 0; i < ids.length; i++) pos.set(ids[i], i);
    var sids = exp.series.sid;
    if (!sids) {
      var at = exp.series.setting || [];
      sids = exp.series.sid = at.map(function (k) { return ids[k]; });
    }
    for (var j = 0; j < sids.length; j++) {
      var list = curves.get(sids[j]);
      if (!list) { list = []; curves.set(sids[j], list); }
      list.push(j);
    }
    exp.order = ids; exp.pos = pos; exp.curves = curves;
  }
  function replaceIn(table, key, gone, fresh) {
    // The rows of ``table`` whose ``key`` is in ``gone`` give way to the rows of ``fresh``.
    var keys = table[key] || [], keep = [], n = (fresh[key] || []).length, out = {};
    for (var i = 0; i < keys.length; i++) if (!gone.has(keys[i])) keep.push(i);
    Object.keys(table).concat(Object.keys(fresh)).forEach(function (c) {
      if (out[c]) return;
      var old = table[c], add = fresh[c], col = new Array(keep.length + n);
      for (var k = 0; k < keep.length; k++) col[k] = old ? old[keep[k]] : null;
      for (var j = 0; j < n; j++) col[keep.length + j] = add ? add[j] : null;
      out[c] = col;
    });
    return out;
  }
  function absorb(exp, update) {
    ["name", "overview", "parameters", "varied", "replicates", "steps", "metrics", "columns",
     "current_code", "summary", "types"].forEach(function (k) { if (k in update) exp[k] = update[k]; });
    if (update.reload) {
      exp.settings = update.settings; exp.series = update.series;
    } else {
      var gone = new Set(update.ids || []), ids = update.settings.id || [];
      update.series.sid = (update.series.setting || []).map(function (k) { return ids[k]; });
      delete update.series.setting;
      delete exp.series.setting;
      exp.settings = replaceIn(exp.settings, "id", gone, update.settings);
      exp.series = replaceIn(exp.series, "sid", gone, update.series);
    }
    index(exp);
  }

  // -- choosers ------------------------------------------------------------------------
  function fill(select, options, chosen, none) {
    select.textContent = "";
    if (none) select.appendChild(el("option", none)).value = "";
    options.forEach(function (o) { var opt = el("option", o); opt.value = o; select.appendChild(opt); });
    var pick = options.indexOf(chosen) >= 0 ? chosen : (none ? "" : (options[0] || ""));
    select.value = pick;
    return pick || null;
  }
  function choosers(exp) {
    var keys = exp.parameters.filter(function (p) { return exp.varied.indexOf(p) >= 0; });
    state.metric = fill($("sp-metric"), exp.metrics, state.metric);
    state.step = fill($("sp-step"), exp.steps, state.step);
    state.colour = fill($("sp-colour"), keys, state.colour, "(none)");
    state.x = fill($("sp-x"), keys, state.x);
    var others = keys.filter(function (k) { return k !== state.x; });
    state.y = fill($("sp-y"), others, state.y);
  }

  // -- the results table ---------------------------------------------------------------
  function tableColumns(exp) {
    var shown = ["label", "status"].concat(exp.varied, exp.replicates, exp.steps, exp.metrics,
                                          ["seconds", "code_version", "error"]);
    var seen = {};
    return shown.filter(function (c) {
      if (seen[c] || !(c in exp.settings)) return false;
      seen[c] = true; return true;
    });
  }
  function outdated(exp, i) {
    // made by another version of the experiment's code (the server says which, as
    // results() does): true, false, or null when the row holds no version
    return !!(exp.settings.outdated && exp.settings.outdated[i] === true);
  }
  function filters(exp) {
    var box = $("sp-filters");
    box.textContent = "";
    exp.varied.concat(exp.replicates).forEach(function (p) {
      var values = [], seen = new Set(), col = exp.settings[p] || [];
      for (var i = 0; i < col.length; i++) {
        var key = fmt(col[i]);
        if (!seen.has(key)) { seen.add(key); values.push(key); }
      }
      values.sort(compare);
      var label = el("label", p + " "), select = el("select");
      select.dataset.param = p;
      fill(select, values, state.filters[p] || "", "all");
      select.addEventListener("change", function () {
        state.filters[p] = select.value || undefined; render();
      });
      label.appendChild(select); box.appendChild(label);
    });
  }
  function compare(a, b) {
    var x = parseFloat(a), y = parseFloat(b);
    if (!isNaN(x) && !isNaN(y) && String(x) === String(a) && String(y) === String(b)) return x - y;
    return a < b ? -1 : a > b ? 1 : 0;
  }
  function sortValue(v) { return v === null || v === undefined ? null : v; }
  function results(exp) {
    var cols = tableColumns(exp), head = $("sp-table").tHead, body = $("sp-table").tBodies[0];
    head.textContent = ""; body.textContent = "";
    var tr = el("tr");
    cols.forEach(function (c) {
      var th = el("th", c);
      th.dataset.column = c;
      if (state.sort === c) th.setAttribute("aria-sort", state.up ? "ascending" : "descending");
      th.addEventListener("click", function () {
        state.up = state.sort === c ? !state.up : true; state.sort = c; render();
      });
      tr.appendChild(th);
    });
    head.appendChild(tr);
    var rows = exp.settings, last = exp.order.map(function (_, i) { return i; });
    var wanted = Object.keys(state.filters).filter(function (p) { return state.filters[p] !== undefined; });
    if (wanted.length) {
      last = last.filter(function (i) {
        return wanted.every(function (p) { return fmt((rows[p] || [])[i]) === state.filters[p]; });
      });
    }
    if (state.sort && rows[state.sort]) {
      var col = rows[state.sort], up = state.up ? 1 : -1;
      var value = function (i) { return sortValue(col[i]); };
      last.sort(function (a, b) {
        var x = value(a), y = value(b);
        if (x === y) return 0;
        if (x === null) return 1;
        if (y === null) return -1;
        return (x < y ? -1 : 1) * up;
      });
    }
    state.visible = last;
    $("sp-shown").textContent = last.length > MAX_ROWS
      ? "the first " + MAX_ROWS + " of " + last.length + " settings; filter or sort to see others"
      : last.length + " settings";
    var frag = document.createDocumentFragment();
    last.slice(0, MAX_ROWS).forEach(function (i) {
      var row = el("tr"), status = rows.status ? rows.status[i] : "";
      row.className = "status-" + String(status || "none").replace(/[^a-z]/g, "");
      if (outdated(exp, i)) row.classList.add("outdated");
      row.dataset.id = rows.id[i];
      if (state.selected === rows.id[i]) row.classList.add("selected");
      cols.forEach(function (c) {
        var text = fmt(rows[c][i]);
        if (c === "code_version" && outdated(exp, i)) text += " (outdated)";
        var td = el("td", text, c === "code_version" ? "code" : "");
        row.appendChild(td);
      });
      row.addEventListener("click", function () { detail(exp, row.dataset.id); });
      frag.appendChild(row);
    });
    body.appendChild(frag);
  }
  function detail(exp, id) {
    state.selected = id;
    var i = exp.pos.get(id), rows = exp.settings, box = $("sp-detail");
    if (i === undefined) return;
    box.hidden = false;
    $("sp-detail-title").textContent = fmt(rows.label ? rows.label[i] : id);
    var status = fmt(rows.status ? rows.status[i] : "");
    var cause = rows.cause ? rows.cause[i] : null, error = rows.error ? rows.error[i] : null;
    $("sp-detail-status").textContent = status + (cause ? " (" + cause + ")" : "") + (error ? ": " + error : "");
    var tb = rows.traceback ? rows.traceback[i] : null;
    $("sp-traceback").hidden = !tb;
    $("sp-traceback").textContent = tb || "";
    var log = $("sp-log");
    if (config.live) {
      log.textContent = "…";
      fetch(api("api/log?experiment=" + current + "&id=" + encodeURIComponent(id)))
        .then(function (r) { return r.ok ? r.text() : ""; })
        .then(function (t) { if (state.selected === id) log.textContent = t || "(no log)"; });
    } else {
      var held = (logs[current] || {})[id];
      log.textContent = held === undefined ? "(no log in this report)" : held;
    }
    Array.prototype.forEach.call($("sp-table").tBodies[0].rows, function (r) {
      r.classList.toggle("selected", r.dataset.id === id);
    });
  }

  // -- summary and code versions ---------------------------------------------------------
  function simpleTable(table, head, rows) {
    table.tHead.textContent = ""; table.tBodies[0].textContent = "";
    var tr = el("tr");
    head.forEach(function (h, k) {
      var th = el("th", h);
      th.addEventListener("click", function () { sortBody(table, th, k); });
      tr.appendChild(th);
    });
    table.tHead.appendChild(tr);
    var frag = document.createDocumentFragment();
    rows.forEach(function (r) {
      var row = el("tr");
      r.forEach(function (v) { row.appendChild(el("td", v)); });
      frag.appendChild(row);
    });
    table.tBodies[0].appendChild(frag);
  }
  function sortBody(table, th, k) {
    // Click a name to sort by its column (by the number a cell starts with, if any).
    var up = th.getAttribute("aria-sort") !== "ascending", body = table.tBodies[0];
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", up ? "ascending" : "descending");
    function key(row) { var t = row.cells[k].textContent, f = parseFloat(t); return isNaN(f) ? t : f; }
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a), y = key(b), c;
      if (typeof x === typeof y) c = x < y ? -1 : x > y ? 1 : 0; else c = typeof x === "number" ? -1 : 1;
      return up ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  function summaryTable(exp) {
    var s = exp.summary || {}, metrics = exp.metrics.filter(function (m) { return (m + "_mean") in s; });
    var keys = Object.keys(s).filter(function (c) {
      return c !== "left_out" && c !== "outdated" &&
        !metrics.some(function (m) { return c.indexOf(m + "_") === 0; });
    });
    var stale = (s.outdated || []).some(function (v) { return v === true; });
    var n = keys.length ? s[keys[0]].length : (metrics.length ? s[metrics[0] + "_mean"].length : 0);
    var rows = [];
    for (var i = 0; i < Math.min(n, MAX_ROWS); i++) {
      rows.push(keys.map(function (k) { return fmt(s[k][i]); }).concat(metrics.map(function (m) {
        var mean = s[m + "_mean"][i], std = s[m + "_std"][i], count = s[m + "_n"][i];
        return mean === null ? "" : fmt(mean) + (std === null ? "" : " ± " + fmt(std)) + " (n=" + count + ")";
      })).concat(stale ? [s.outdated[i] === true ? "outdated" : ""] : []));
    }
    $("sp-summary-note").textContent = exp.replicates.length
      ? "mean ± std over " + exp.replicates.join(", ") + ", of each setting's last row"
      : "each setting's last row (no replicate field is declared)";
    simpleTable($("sp-summary"), keys.concat(metrics, stale ? ["outdated"] : []), rows);
    var list = $("sp-best"), found = (exp.best || {})[state.metric] || {};
    list.textContent = "";
    [["max", "highest"], ["min", "lowest"]].forEach(function (pair) {
      var b = found[pair[0]];
      if (!b) return;
      var where = Object.keys(b.setting).map(function (k) { return k + "=" + fmt(b.setting[k]); }).join(", ");
      var ties = b.ties && b.ties.length ? "; not told apart from " + b.ties.join("; ") : "";
      var old = b.outdated === true ? "; outdated: made by an earlier version of the code" : "";
      var item = el("li", pair[1] + " mean " + state.metric + ": " + fmt(b.mean) + " at " +
        (where || "the one setting") + " (" + b.verdict + ties + old + ")");
      if (old) item.className = "outdated";
      list.appendChild(item);
    });
  }
  function codeTable(exp) {
    var counts = new Map();
    exp.order.forEach(function (_, i) {
      var key = JSON.stringify(["code_version", "git_commit", "git_dirty"].map(function (c) {
        return exp.settings[c] ? exp.settings[c][i] : null;
      }));
      counts.set(key, (counts.get(key) || 0) + 1);
    });
    var rows = [];
    counts.forEach(function (n, key) {
      var v = JSON.parse(key);
      var mark = v[0] && exp.current_code && v[0] !== exp.current_code ? " (outdated)"
               : v[0] && v[0] === exp.current_code ? " (current)" : "";
      rows.push([fmt(v[0]) + mark, fmt(v[1]), fmt(v[2]), String(n)]);
    });
    simpleTable($("sp-code"), ["code_version", "git_commit", "git_dirty", "settings"], rows);
  }

  // -- charts ----------------------------------------------------------------------------
  function note(id, text) {
    var box = $(id);
    if (window.Plotly) Plotly.purge(box);
    box.textContent = "";
    box.appendChild(el("p", text, "note"));
  }
  function draw(id, traces, layout) {
    var box = $(id);
    if (box.firstChild && box.firstChild.className === "note") box.textContent = "";
    layout.margin = { l: 60, r: 20, t: 40, b: 50 };
    if (layout.title) layout.title.font = { size: 13 };
    Plotly.react(box, traces, layout, { displaylogo: false, responsive: true });
  }
  function hues(values) {
    // Each value's colour and legend name: one colour per value up to MAX_HUES, else
    // the numbers binned into MAX_HUES ranges (or text values folded into the last).
    var distinct = Array.from(new Set(values.map(fmt))).sort(compare);
    if (distinct.length <= MAX_HUES) {
      return function (v) { var k = distinct.indexOf(fmt(v)); return { name: fmt(v), color: PALETTE[k % 10], rank: k }; };
    }
    var nums = values.filter(function (v) { return typeof v === "number"; }).sort(function (a, b) { return a - b; });
    var edges = [];
    for (var b = 1; b < MAX_HUES; b++) edges.push(nums[Math.floor(b * nums.length / MAX_HUES)]);
    return function (v) {
      if (typeof v !== "number") return { name: "other", color: PALETTE[7], rank: MAX_HUES };
      var k = 0;
      while (k < edges.length && v >= edges[k]) k++;
      var low = k === 0 ? nums[0] : edges[k - 1], high = k === edges.length ? nums[nums.length - 1] : edges[k];
      return { name: fmt(low) + "–" + fmt(high), color: PALETTE[k], rank: k };
    };
  }
  function logAxis(values) {
    var pos = values.filter(function (v) { return typeof v === "number"; });
    if (pos.length < 3 || pos.some(function (v) { return v <= 0; })) return "-";
    var lo = Math.min.apply(null, pos), hi = Math.max.apply(null, pos);
    return hi / lo >= 100 ? "log" : "-";
  }
  function groupKey(exp, i) {
    return JSON.stringify(exp.parameters.map(function (p) { return exp.settings[p] ? exp.settings[p][i] : null; }));
  }
  function curves(exp) {
    var metric = state.metric, step = state.step;
    if (!metric || !step) return note("sp-curves", "No learning curves: no setting reports a step (self.report(epoch=..., ...)).");
    var m = exp.series[metric], s = exp.series[step];
    if (!m || !s) return note("sp-curves", "No learning curves for " + metric + ": it is not reported per " + step + ".");
    // groups: the settings that differ only in their replicates, each a line
    var groups = new Map();
    // The settings the table shows, in its order (filter and sort it to choose): past
    // MAX_LINES lines a chart shows no more, and takes seconds to draw without a GPU.
    var left = 0;
    (state.visible || []).forEach(function (at) {
      var l = exp.curves.get(exp.order[at]);
      if (!l || l.length < 2) return;
      var key = groupKey(exp, at), g = groups.get(key);
      if (!g) {
        if (groups.size >= MAX_LINES) { left++; return; }
        g = { first: at, settings: [] }; groups.set(key, g);
      }
      g.settings.push(l);
    });
    if (!groups.size) return note("sp-curves", "No learning curves yet: no setting has reported two rows.");
    var colourOf = state.colour ? hues(exp.settings[state.colour] || []) : function () { return { name: "", color: PALETTE[0], rank: 0 }; };
    var lines = new Map(), bands = [], banded = groups.size <= MAX_BANDS;
    groups.forEach(function (g) {
      var at = new Map();
      g.settings.forEach(function (l) {
        l.forEach(function (i) {
          var x = s[i], y = m[i];
          if (x === null || y === null || typeof y !== "number") return;
          var list = at.get(x); if (!list) { list = []; at.set(x, list); } list.push(y);
        });
      });
      var xs = Array.from(at.keys()).sort(function (a, b) { return a - b; });
      var mean = [], std = [];
      xs.forEach(function (x) {
        var v = at.get(x), mu = v.reduce(function (a, b) { return a + b; }, 0) / v.length;
        var sd = v.length > 1 ? Math.sqrt(v.reduce(function (a, b) { return a + (b - mu) * (b - mu); }, 0) / (v.length - 1)) : 0;
        mean.push(mu); std.push(sd);
      });
      var hue = colourOf(state.colour ? exp.settings[state.colour][g.first] : null);
      var line = lines.get(hue.name);
      if (!line) { line = { x: [], y: [], hue: hue }; lines.set(hue.name, line); }
      line.x.push.apply(line.x, xs); line.y.push.apply(line.y, mean);
      line.x.push(null); line.y.push(null);
      if (banded && g.settings.length > 1) {
        bands.push({ type: "scatter", mode: "lines", fill: "toself", hoverinfo: "skip",
          showlegend: false, line: { width: 0 }, fillcolor: hue.color + "33", opacity: 1,
          x: xs.concat(xs.slice().reverse()),
          y: mean.map(function (v, k) { return v + std[k]; }).concat(mean.map(function (v, k) { return v - std[k]; }).reverse()) });
      }
    });
    var traces = bands.slice();
    Array.from(lines.values()).sort(function (a, b) { return a.hue.rank - b.hue.rank; }).forEach(function (line) {
      traces.push({ type: "scattergl", mode: "lines", name: line.hue.name || metric, x: line.x, y: line.y,
        line: { color: line.hue.color, width: 1.5 }, connectgaps: false, showlegend: !!state.colour });
    });
    var grouped = exp.replicates.length ? " (mean ± std over " + exp.replicates.join(", ") + ")" : "";
    if (left) grouped += ", first " + MAX_LINES + " lines";
    draw("sp-curves", traces, { title: { text: metric + " per " + step + grouped },
      xaxis: { title: { text: step }, tickformat: "d" }, yaxis: { title: { text: metric } },
      legend: { title: { text: state.colour || "" } } });
  }
  function summaryRows(exp) {
    var s = exp.summary || {}, first = Object.keys(s)[0];
    return first ? s[first].length : 0;
  }
  function against(exp) {
    var s = exp.summary || {}, metric = state.metric, x = state.x;
    if (!metric || !x || !(metric + "_mean" in s) || !(x in s)) {
      return note("sp-against", "No metric against a parameter: it needs a metric and a varied parameter.");
    }
    var n = summaryRows(exp), colourOf = state.colour && state.colour in s ? hues(s[state.colour]) : null;
    var traces = new Map();
    for (var i = 0; i < n; i++) {
      var hue = colourOf ? colourOf(s[state.colour][i]) : { name: metric, color: PALETTE[0], rank: 0 };
      var t = traces.get(hue.name);
      if (!t) {
        t = { type: n > 20000 ? "scattergl" : "scatter", mode: "markers", name: hue.name, x: [], y: [], marker: { color: hue.color, size: 6 },
              error_y: { type: "data", array: [], visible: true, color: hue.color }, rank: hue.rank, showlegend: !!colourOf };
        traces.set(hue.name, t);
      }
      t.x.push(s[x][i]); t.y.push(s[metric + "_mean"][i]); t.error_y.array.push(s[metric + "_std"][i] || 0);
    }
    var list = Array.from(traces.values()).sort(function (a, b) { return a.rank - b.rank; });
    list.forEach(function (t) { delete t.rank; });
    draw("sp-against", list, { title: { text: metric + " against " + x + " (± std)" },
      xaxis: { title: { text: x }, type: logAxis(s[x]) }, yaxis: { title: { text: metric } },
      legend: { title: { text: colourOf ? state.colour : "" } } });
  }
  function heatmap(exp) {
    var s = exp.summary || {}, metric = state.metric, x = state.x, y = state.y;
    if (!metric || !x || !y || !(metric + "_mean" in s) || !(x in s) || !(y in s)) {
      return note("sp-heatmap", "No heatmap: it needs two varied parameters.");
    }
    var xs = Array.from(new Set(s[x].map(fmt))).sort(compare), ys = Array.from(new Set(s[y].map(fmt))).sort(compare);
    var sum = ys.map(function () { return xs.map(function () { return 0; }); });
    var count = ys.map(function () { return xs.map(function () { return 0; }); });
    for (var i = 0; i < summaryRows(exp); i++) {
      var v = s[metric + "_mean"][i];
      if (typeof v !== "number") continue;
      var a = ys.indexOf(fmt(s[y][i])), b = xs.indexOf(fmt(s[x][i]));
      sum[a][b] += v; count[a][b] += 1;
    }
    var z = sum.map(function (r, a) { return r.map(function (t, b) { return count[a][b] ? t / count[a][b] : null; }); });
    draw("sp-heatmap", [{ type: "heatmap", x: xs, y: ys, z: z, colorscale: "Viridis",
      colorbar: { title: { text: metric } }, hoverongaps: false }],
      { title: { text: metric + " by " + x + " and " + y }, xaxis: { title: { text: x }, type: "category" },
        yaxis: { title: { text: y }, type: "category" } });
  }
  function parallel(exp) {
    var s = exp.summary || {}, metric = state.metric;
    var dims = exp.varied.filter(function (p) { return p in s; });
    if (!metric || dims.length < 3 || !(metric + "_mean" in s)) {
      return note("sp-parallel", "No parallel coordinates: they need three or more varied parameters.");
    }
    var n = summaryRows(exp), dimensions = dims.map(function (p) {
      var col = s[p];
      if (col.every(function (v) { return typeof v === "number" || v === null; })) {
        return { label: p, values: col };
      }
      var names = Array.from(new Set(col.map(fmt))).sort(compare);
      return { label: p, values: col.map(function (v) { return names.indexOf(fmt(v)); }),
               tickvals: names.map(function (_, k) { return k; }), ticktext: names };
    });
    var z = s[metric + "_mean"].slice(0, n);
    dimensions.push({ label: metric, values: z });
    draw("sp-parallel", [{ type: "parcoords", dimensions: dimensions,
      line: { color: z.map(function (v) { return v === null ? NaN : v; }), colorscale: "Viridis", showscale: true } }],
      { title: { text: metric + " across " + dims.join(", ") } });
  }

  // -- the whole page -----------------------------------------------------------------------
  function render() {
    var exp = experiments[current];
    if (!exp) return;
    $("sp-title").textContent = exp.name;
    var statuses = {};
    exp.order.forEach(function (_, i) {
      var st = exp.settings.status ? exp.settings.status[i] : "";
      statuses[st] = (statuses[st] || 0) + 1;
    });
    $("sp-counts").textContent = !exp.order.length ? "No results stored yet."
      : exp.order.length + " settings: " + Object.keys(statuses).map(function (k) {
        return statuses[k] + " " + k; }).join(", ");
    var ov = exp.overview;
    $("sp-overview-box").hidden = !ov;
    if (ov) {
      $("sp-overview-title").textContent = ov.title;
      simpleTable($("sp-overview"), ["field", "type", "values", "size"], ov.rows);
    }
    var times = window.spTimes = {}, t = performance.now();
    function lap(name) { var n = performance.now(); times[name] = n - t; t = n; }
    choosers(exp); filters(exp); lap("filters");
    results(exp); lap("table");
    summaryTable(exp); codeTable(exp); lap("summary");
    if (window.Plotly) requestAnimationFrame(function () { setTimeout(function () { charts(exp); }, 0); });
    if (state.selected && exp.pos.has(state.selected) && !config.live) detail(exp, state.selected);
  }
  function charts(exp) {
    // The charts after the tables have been painted, one at a time: the page shows
    // its table at once, whatever the number of rows the curves draw.
    var drawing = ++charting, steps = [curves, against, heatmap, parallel], t = performance.now();
    function next() {
      if (drawing !== charting) return;  // a newer render draws them
      var step = steps.shift();
      if (!step) { window.spCharts = performance.now(); document.body.dataset.charts = String(drawing); return; }
      step(exp);
      var n = performance.now(); (window.spTimes || {})[step.name] = n - t; t = n;
      setTimeout(next, 0);
    }
    next();
  }
  function loadPlotly() {
    // Plotly (4.8 MB of script) once the table is painted: from the server beside the
    // page, or from the page itself, where a report holds it as text.
    var script = document.createElement("script");
    script.onload = function () { if (experiments[current]) charts(experiments[current]); };
    if (config.plotly) {
      script.src = config.plotly;
      document.body.appendChild(script);
    } else {
      script.textContent = document.getElementById("sp-plotly").textContent;
      document.body.appendChild(script);
      if (experiments[current]) charts(experiments[current]);
    }
  }
  function start(data) {
    window.spData = performance.now();
    experiments = data.experiments;
    version = data.version || 0;
    logs = data.logs || {};
    experiments.forEach(index);
    var which = $("sp-which");
    if (experiments.length > 1) {
      $("sp-which-label").hidden = false;
      fill(which, experiments.map(function (e) { return e.name; }), experiments[0].name);
      which.addEventListener("change", function () { current = which.selectedIndex; state.filters = {}; render(); });
    }
    $("sp-made").textContent = config.live ? "live: new rows appear as the run records them"
                                           : "made " + (config.made || "") + " by superparams";
    ["sp-metric", "sp-step", "sp-colour", "sp-x", "sp-y"].forEach(function (id) {
      $(id).addEventListener("change", function () {
        state[id.slice(3)] = $(id).value || null; render();
      });
    });
    render();
    document.body.dataset.ready = "1";
    requestAnimationFrame(function () {
      window.spPainted = performance.now();
      setTimeout(loadPlotly, 0);
    });
    if (config.live) setTimeout(poll, 500);
  }
  function poll() {
    fetch(api("api/changes?since=" + version)).then(function (r) { return r.json(); }).then(function (d) {
      if (d.version !== version && d.experiments) {
        d.experiments.forEach(function (u, k) { absorb(experiments[k], u); });
        version = d.version;
        render();
        document.body.dataset.version = String(version);
      }
    }).catch(function () { $("sp-made").textContent = "live: the server is gone (stopped?)"; })
      .then(function () { setTimeout(poll, 500); });
  }
  if (config.live) {
    fetch(api("api/data")).then(function (r) { return r.json(); }).then(start);
  } else {
    start(JSON.parse(document.getElementById("sp-data").textContent));
  }
})();
