// Time-of-use editor: each segment runs until the next one starts, so the "until" column
// follows the start times as they are typed (the server recomputes it on every re-render).
document.addEventListener("input", function (ev) {
  if (!ev.target.matches || !ev.target.matches("input[name=seg_start]")) return;
  var rows = Array.prototype.slice.call(ev.target.closest("tbody").querySelectorAll("tr.seg-row"));
  rows.forEach(function (tr, i) {
    var cell = tr.querySelector("td.until");
    if (!cell) return;
    var next = rows[i + 1] && rows[i + 1].querySelector("input[name=seg_start]");
    cell.textContent = next ? (next.value || "?") : "24:00";
  });
});
