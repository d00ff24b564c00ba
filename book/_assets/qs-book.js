// qs-book: move each table caption above its scrolling container and flag wide tables
// (styles in qs-book.css; both are listed in _config.yml, so every page has them).
(function () {
  "use strict";

  function liftCaption(box) {
    var table = box.querySelector(":scope > table");
    var caption = table && table.querySelector(":scope > caption");
    if (!caption) return null;
    var label = document.createElement("div");
    label.className = "qs-table-caption";
    label.id = (table.id || "table-" + Math.random().toString(36).slice(2)) + "-caption";
    while (caption.firstChild) label.appendChild(caption.firstChild);
    caption.remove();
    table.setAttribute("aria-labelledby", label.id);
    var hint = document.createElement("div");
    hint.className = "qs-scroll-hint";
    hint.setAttribute("aria-hidden", "true");
    hint.textContent = "wider than the page: scroll the table sideways \u2192";
    box.parentNode.insertBefore(label, box);
    box.parentNode.insertBefore(hint, box);
    return label;
  }

  function setup() {
    var boxes = Array.prototype.slice.call(document.querySelectorAll(".pst-scrollable-table-container"));
    var pairs = boxes.map(function (box) { return [box, liftCaption(box)]; });
    function mark() {
      pairs.forEach(function (pair) {
        var wide = pair[0].scrollWidth > pair[0].clientWidth + 1;
        pair[0].classList.toggle("qs-overflows", wide);
        if (pair[1]) pair[1].classList.toggle("qs-overflows", wide);
      });
    }
    mark();
    window.addEventListener("resize", mark);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setup);
  } else {
    setup();
  }
})();
