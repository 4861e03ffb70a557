/* Charts of the console: every element with data-chart="<id of a JSON script>" becomes an
   ECharts chart.  The JSON holds {type: "bar"|"line", labels: [...], axes: [name, ...],
   series: [{name, axis, values: ["12.34", ...]}]}.  ECharts is loaded on first use from the
   element's data-echarts-src; charts are (re)built on page load and after every htmx swap. */
(function () {
  "use strict";
  if (window.mdCharts) { return; }
  var loading = null;

  function loadEcharts(src) {
    if (window.echarts) { return Promise.resolve(window.echarts); }
    if (!loading) {
      loading = new Promise(function (resolve, reject) {
        var s = document.createElement("script");
        s.src = src;
        s.onload = function () { resolve(window.echarts); };
        s.onerror = reject;
        document.head.appendChild(s);
      });
    }
    return loading;
  }

  function options(data) {
    var axes = (data.axes || [""]).map(function (name, i) {
      return { type: "value", name: name, position: i === 0 ? "left" : "right", splitLine: { show: i === 0 } };
    });
    return {
      animation: false,
      tooltip: { trigger: "axis" },
      legend: { top: 0 },
      grid: { left: 56, right: axes.length > 1 ? 56 : 16, top: 64, bottom: 32 },
      xAxis: { type: "category", data: data.labels },
      yAxis: axes,
      series: data.series.map(function (s) {
        return { name: s.name, type: data.type, yAxisIndex: s.axis || 0, data: s.values, smooth: false };
      })
    };
  }

  function init(root) {
    root = root || document;
    if (!root.querySelectorAll) { return; }
    var els = Array.prototype.slice.call(root.querySelectorAll("[data-chart]"));
    if (root.matches && root.matches("[data-chart]")) { els.push(root); }
    els.forEach(function (el) {
      var source = document.getElementById(el.getAttribute("data-chart"));
      if (!source) { return; }
      loadEcharts(el.getAttribute("data-echarts-src")).then(function (echarts) {
        var old = echarts.getInstanceByDom(el);
        if (old) { old.dispose(); }
        echarts.init(el).setOption(options(JSON.parse(source.textContent)));
      });
    });
  }

  function resizeAll() {
    if (!window.echarts) { return; }
    Array.prototype.forEach.call(document.querySelectorAll("[data-chart]"), function (el) {
      var chart = window.echarts.getInstanceByDom(el);
      if (chart) { chart.resize(); }
    });
  }

  window.mdCharts = { init: init };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { init(document); });
  } else {
    init(document);
  }
  document.addEventListener("htmx:load", function (e) { init(e.target); });
  window.addEventListener("resize", resizeAll);
})();
