/* Strata dashboards: draws the page's charts from the JSON the server embedded (#page-data)
   with Apache ECharts (vendored, see vendor/VENDORED.json). One function per page. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("page-data").textContent);
  var charts = [];
  var colors = { ok: "#15803d", stale: "#b45309", failing: "#b91c1c", never_built: "#9ca3af", source: "#1d4ed8" };

  function num(v) { return v === null || v === undefined ? null : Number(v); }
  function bytes(n) {
    n = Number(n || 0);
    var units = ["B", "KB", "MB", "GB", "TB"], i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    return (i ? n.toFixed(1) : n.toFixed(0)) + " " + units[i];
  }
  function chart(id, option) {
    var el = document.getElementById(id);
    if (!el) { return null; }
    var c = echarts.init(el, null, { renderer: "canvas" });
    option.animation = false;
    option.grid = option.grid || { left: 56, right: 24, top: 28, bottom: 28, containLabel: false };
    option.tooltip = option.tooltip || { trigger: "axis" };
    c.setOption(option);
    charts.push(c);
    return c;
  }
  function empty(id, text) {
    var el = document.getElementById(id);
    if (el) { el.innerHTML = '<p class="empty">' + text + "</p>"; el.style.height = "auto"; }
  }
  function line(id, days, series, yName) {
    if (!days.length) { return empty(id, "no data yet"); }
    return chart(id, {
      legend: series.length > 1 ? { top: 0 } : undefined,
      xAxis: { type: "category", data: days },
      yAxis: { type: "value", name: yName, scale: true },
      series: series
    });
  }

  var pages = {
    business: function () {
      var d = data.days || [];
      var days = d.map(function (r) { return r.date; });
      line("chart-dau", days, [{ name: "DAU", type: "line", showSymbol: false, data: d.map(function (r) { return num(r.dau); }) }]);
      if (days.length) {
        chart("chart-revenue", {
          legend: { top: 0 },
          xAxis: { type: "category", data: days },
          yAxis: [{ type: "value", name: "revenue" }, { type: "value", name: "orders" }],
          series: [
            { name: "revenue", type: "bar", data: d.map(function (r) { return num(r.revenue); }) },
            { name: "orders", type: "line", yAxisIndex: 1, showSymbol: false, data: d.map(function (r) { return num(r.orders); }) }
          ]
        });
      } else { empty("chart-revenue", "no data yet"); }
      line("chart-aov", days, [{ name: "AOV", type: "line", showSymbol: false, data: d.map(function (r) { return num(r.aov); }) }]);
      var f = data.funnel;
      if (f && f.steps && f.steps.length) {
        chart("chart-funnel", {
          tooltip: { trigger: "item", formatter: function (p) { return p.name + ": " + p.value + " users (" + (p.data.rate * 100).toFixed(1) + " %)"; } },
          series: [{ type: "funnel", sort: "none", left: "10%", width: "80%", top: 10, bottom: 10,
                     label: { formatter: function (p) { return p.name + "  " + p.value + "  (" + (p.data.rate * 100).toFixed(1) + " %)"; } },
                     data: f.steps.map(function (s) { return { name: s.name, value: s.users, rate: s.conversion_rate }; }) }]
        });
      } else { empty("chart-funnel", "no funnel yet"); }
      var top = data.top_events || [];
      if (top.length) {
        chart("chart-top-events", {
          grid: { left: 120, right: 40, top: 10, bottom: 24 },
          xAxis: { type: "value" },
          yAxis: { type: "category", inverse: true, data: top.map(function (e) { return e.event_type; }) },
          series: [{ type: "bar", data: top.map(function (e) { return e.events; }), label: { show: true, position: "right" } }]
        });
      } else { empty("chart-top-events", "no events yet"); }
    },

    quality: function () {
      var byType = (data.dead_letters && data.dead_letters.by_type_day) || {};
      var types = Object.keys(byType).sort();
      var days = {};
      types.forEach(function (t) { Object.keys(byType[t]).forEach(function (day) { days[day] = true; }); });
      var dayList = Object.keys(days).sort();
      if (types.length) {
        chart("chart-dead-letters", {
          legend: { type: "scroll", top: 0 },
          grid: { left: 56, right: 24, top: 40, bottom: 28 },
          xAxis: { type: "category", data: dayList },
          yAxis: { type: "value", name: "records" },
          series: types.map(function (t) { return { name: t, type: "bar", stack: "dl", data: dayList.map(function (day) { return byType[t][day] || 0; }) }; })
        });
      } else { empty("chart-dead-letters", "no dead letters recorded"); }
      var dup = data.duplicate_rate || [];
      line("chart-duplicates", dup.map(function (p) { return p[0]; }),
           [{ name: "duplicate rate", type: "line", showSymbol: false, data: dup.map(function (p) { return (p[1] * 100).toFixed(3); }) }], "%");
      // Every watched series in one ECharts instance (a grid each): one canvas instead of a
      // dozen keeps the page fast.
      var series = data.anomalies || [];
      var holder = document.getElementById("anomaly-multiples");
      if (!series.length) { return empty("anomaly-multiples", "no series to judge yet"); }
      var columns = Math.max(1, Math.min(3, Math.floor(holder.clientWidth / 320)));
      var rows = Math.ceil(series.length / columns), cellH = 190;
      holder.style.height = (rows * cellH + 10) + "px";
      var option = { title: [], grid: [], xAxis: [], yAxis: [], series: [], tooltip: { trigger: "axis" },
                     axisPointer: { link: [{ xAxisIndex: "all" }] } };
      series.forEach(function (a, i) {
        var left = (i % columns) * (100 / columns), top = Math.floor(i / columns) * cellH;
        var pts = a.points || [];
        option.title.push({ text: a.label + " · " + a.status.replace("_", " "), left: (left + 1) + "%", top: top,
                            textStyle: { fontSize: 12, fontWeight: 600, color: a.status === "anomaly" ? "#b91c1c" : "#1f2430" } });
        option.grid.push({ left: (left + 4) + "%", width: (100 / columns - 6) + "%", top: top + 26, height: cellH - 56 });
        option.xAxis.push({ type: "category", gridIndex: i, data: pts.map(function (p) { return p.day; }),
                            axisLabel: { fontSize: 9 } });
        option.yAxis.push({ type: "value", gridIndex: i, scale: true, axisLabel: { fontSize: 9 } });
        var on = { xAxisIndex: i, yAxisIndex: i };
        function s(extra) { var o = Object.assign({}, on, extra); return o; }
        option.series.push(
          s({ name: "low", type: "line", stack: "band" + i, symbol: "none", silent: true, lineStyle: { opacity: 0 },
              data: pts.map(function (p) { return p.low === null ? null : Number(p.low); }) }),
          s({ name: "typical range", type: "line", stack: "band" + i, symbol: "none", silent: true, lineStyle: { opacity: 0 },
              areaStyle: { color: "rgba(29,78,216,0.12)" },
              data: pts.map(function (p) { return p.low === null ? null : Number(p.high) - Number(p.low); }) }),
          s({ name: "expected", type: "line", symbol: "none", lineStyle: { type: "dashed", color: "#6b7280" },
              data: pts.map(function (p) { return num(p.expected); }) }),
          s({ name: a.label, type: "line", symbolSize: 3, color: "#1f2430", data: pts.map(function (p) { return num(p.value); }) }),
          s({ name: "anomaly", type: "scatter", symbolSize: 9, color: "#b91c1c",
              data: pts.map(function (p) { return p.status === "anomaly" ? num(p.value) : null; }) })
        );
      });
      var c = echarts.init(holder, null, { renderer: "canvas" });
      option.animation = false;
      c.setOption(option);
      charts.push(c);
    },

    pipeline: function () {
      var runs = (data.runs || []).slice().reverse();
      var ingest = runs.filter(function (r) { return r.job.indexOf("ingest") === 0 && r.records_per_s; });
      if (ingest.length) {
        chart("chart-throughput", {
          xAxis: { type: "category", data: ingest.map(function (r) { return r.finished_at.slice(0, 16); }) },
          yAxis: { type: "value", name: "records/s" },
          series: [{ name: "records/s", type: "bar", data: ingest.map(function (r) { return Math.round(r.records_per_s); }) }]
        });
      } else { empty("chart-throughput", "no ingest run recorded"); }
      if (runs.length) {
        var jobs = Array.from(new Set(runs.map(function (r) { return r.job; })));
        chart("chart-durations", {
          legend: { top: 0 },
          xAxis: { type: "category", data: runs.map(function (r) { return r.finished_at.slice(0, 16); }) },
          yAxis: { type: "value", name: "seconds" },
          series: jobs.map(function (job) {
            return { name: job, type: "bar", stack: "d", data: runs.map(function (r) {
              return r.job === job ? { value: Number(r.duration_s.toFixed(1)), itemStyle: { color: r.status === "failed" ? "#b91c1c" : undefined } } : null;
            }) };
          })
        });
      } else { empty("chart-durations", "no run recorded"); }
      var minutes = data.stream_minutes;
      if (minutes && minutes.length) {
        var windows = Array.from(new Set(minutes.map(function (m) { return m.window_start; }))).sort();
        var types = Array.from(new Set(minutes.map(function (m) { return m.event_type; }))).sort();
        var lag = {};
        (data.stream_lag || []).forEach(function (l) { lag[l.window_end] = Math.max(lag[l.window_end] || 0, l.lag_s); });
        var series = types.map(function (t) {
          return { name: t, type: "bar", stack: "m", data: windows.map(function (w) {
            var m = minutes.find(function (x) { return x.window_start === w && x.event_type === t; });
            return m ? m.count_events : 0;
          }) };
        });
        series.push({ name: "lag (s)", type: "line", yAxisIndex: 1, data: windows.map(function (w) {
          var m = minutes.find(function (x) { return x.window_start === w; });
          return m && lag[m.window_end] !== undefined ? Number(lag[m.window_end].toFixed(1)) : null;
        }) });
        chart("chart-stream", {
          legend: { type: "scroll", top: 0 },
          grid: { left: 56, right: 56, top: 40, bottom: 28 },
          xAxis: { type: "category", data: windows.map(function (w) { return w.slice(11, 16); }) },
          yAxis: [{ type: "value", name: "events/min" }, { type: "value", name: "lag s" }],
          series: series
        });
      }
    },

    cost: function () {
      var c = data.cost || {};
      var builds = c.builds || [];
      if (builds.length) {
        chart("chart-builds", {
          tooltip: { trigger: "axis", valueFormatter: bytes },
          xAxis: { type: "category", data: builds.map(function (b) { return b.finished_at.slice(0, 16); }) },
          yAxis: { type: "value", axisLabel: { formatter: bytes } },
          series: [{ name: "bytes", type: "bar", data: builds.map(function (b) { return b.bytes; }) }]
        });
      } else { empty("chart-builds", "no build recorded"); }
      var top = c.top_models || [];
      if (top.length) {
        chart("chart-top-models", {
          tooltip: { trigger: "axis", valueFormatter: bytes },
          grid: { left: 130, right: 40, top: 10, bottom: 24 },
          xAxis: { type: "value", axisLabel: { formatter: bytes } },
          yAxis: { type: "category", inverse: true, data: top.map(function (m) { return m.name; }) },
          series: [{ type: "bar", data: top.map(function (m) { return m.bytes; }) }]
        });
      } else { empty("chart-top-models", "no build recorded"); }
      var daily = c.daily || [];
      var price = c.price_per_tib_usd || 6.25;
      var tib = Math.pow(1024, 4);
      if (daily.length) {
        chart("chart-daily-spend", {
          legend: { top: 0 },
          tooltip: { trigger: "axis", valueFormatter: function (v) { return "$" + Number(v).toFixed(5); } },
          xAxis: { type: "category", data: daily.map(function (d) { return d.day; }) },
          yAxis: { type: "value", name: "USD" },
          series: [
            { name: "dbt", type: "bar", stack: "usd", data: daily.map(function (d) { return d.dbt_bytes / tib * price; }) },
            { name: "API", type: "bar", stack: "usd", data: daily.map(function (d) { return d.api_bytes / tib * price; }) }
          ]
        });
      } else { empty("chart-daily-spend", "nothing recorded yet"); }
    },

    lineage: function () {
      var g = data.graph;
      if (!g) { return; }
      var layerColumns = {};
      g.nodes.forEach(function (n) { layerColumns[n.column] = true; });
      chart("chart-lineage", {
        tooltip: { trigger: "item", formatter: function (p) {
          if (p.dataType !== "node") { return ""; }
          var n = p.data.node;
          return "<b>" + n.name + "</b> (" + n.layer + ", " + n.state.replace("_", " ") + ")" +
            (n.last_built ? "<br>built " + n.last_built.slice(0, 16) + " (" + n.age_hours + " h ago)" : "") +
            (n.kind === "model" ? "<br>tests: " + n.tests_passed + " passed, " + n.tests_failed + " failed" : "");
        } },
        grid: undefined,
        series: [{
          type: "graph", layout: "none", roam: true, edgeSymbol: ["none", "arrow"], edgeSymbolSize: 7,
          label: { show: true, position: "bottom", fontSize: 11 },
          lineStyle: { color: "#9ca3af", curveness: 0.15 },
          data: g.nodes.map(function (n) {
            return { id: n.id, name: n.name, x: n.column * 200, y: n.row * 70, symbolSize: 18, node: n,
                     itemStyle: { color: colors[n.state] || "#6b7280" } };
          }),
          links: g.edges.map(function (e) { return { source: e.source, target: e.target }; })
        }]
      });
    }
  };

  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
  if (pages[data.page]) { pages[data.page](); }
  // For the browser tests and bench/dashboards.py: how many charts, and when they were drawn.
  document.body.setAttribute("data-charts", String(charts.length));
  if (window.performance && performance.mark) { performance.mark("strata-charts-drawn"); }
})();
