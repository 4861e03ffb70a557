// Tenant center: the daily usage chart from the JSON embedded in the page.
(function () {
  "use strict";
  function draw() {
    var el = document.getElementById("usage-chart");
    var src = document.getElementById("usage-data");
    if (!el || !src || !window.echarts) { return; }
    var data = JSON.parse(src.textContent);
    var series = [];
    var axes = [];
    if (data.has_electricity || !data.has_water) {
      axes.push({ type: "value", name: "kWh" });
      series.push({ name: data.labels.electricity, type: "bar", data: data.electricity.map(Number), yAxisIndex: 0 });
    }
    if (data.has_water) {
      axes.push({ type: "value", name: "m³" });
      series.push({ name: data.labels.water, type: "line", data: data.water.map(Number), yAxisIndex: axes.length - 1 });
    }
    var chart = window.echarts.init(el);
    chart.setOption({
      tooltip: { trigger: "axis" },
      legend: {},
      grid: { left: 48, right: 48, bottom: 32, top: 40 },
      xAxis: { type: "category", data: data.days.map(function (d) { return d.slice(5); }) },
      yAxis: axes,
      series: series
    });
    window.addEventListener("resize", function () { chart.resize(); });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
