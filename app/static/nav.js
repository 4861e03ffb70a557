// The main menu's groups are <details> elements: one open at a time, closed by a click
// elsewhere or Escape. Without this script they still open and close on their own.
(function () {
  function menus() { return document.querySelectorAll("header nav details.menu"); }
  document.addEventListener("toggle", function (ev) {
    var d = ev.target;
    if (!d.classList || !d.classList.contains("menu") || !d.open) return;
    menus().forEach(function (other) { if (other !== d) other.open = false; });
  }, true);
  document.addEventListener("click", function (ev) {
    if (!ev.target.closest("header nav details.menu")) menus().forEach(function (d) { d.open = false; });
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.key !== "Escape") return;
    menus().forEach(function (d) {
      if (d.open) { d.open = false; d.querySelector("summary").focus(); }
    });
  });
})();
