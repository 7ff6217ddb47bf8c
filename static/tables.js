/* Tables wider than their place (a phone, a narrow LMS frame) scroll inside their wrapper
 * (.table-wrap) rather than being cut off. When one does, this says so: a visible hint above
 * it, and the wrapper becomes a named, focusable region so a keyboard can scroll it too. The
 * CSS adds shadows at the edge that has more columns behind it. Checked again on resize. */
(function () {
  "use strict";

  function hintFor(wrap) {
    var hint = wrap.previousElementSibling;
    if (hint && hint.classList.contains("table-hint")) return hint;
    hint = document.createElement("p");
    hint.className = "table-hint muted small";
    hint.textContent = "The table is wider than the screen: scroll it sideways to see every column.";
    wrap.parentNode.insertBefore(hint, wrap);
    return hint;
  }

  function check() {
    document.querySelectorAll(".table-wrap").forEach(function (wrap) {
      var wide = wrap.scrollWidth > wrap.clientWidth + 1;
      var hint = hintFor(wrap);
      hint.hidden = !wide;
      if (wide) {
        var caption = wrap.querySelector("caption");
        wrap.setAttribute("tabindex", "0");
        wrap.setAttribute("role", "region");
        wrap.setAttribute("aria-label", caption ? caption.textContent.trim() : "Table");
      } else {
        wrap.removeAttribute("tabindex");
        wrap.removeAttribute("role");
        wrap.removeAttribute("aria-label");
      }
    });
  }

  var pending = null;
  window.addEventListener("resize", function () {
    clearTimeout(pending);
    pending = setTimeout(check, 150);
  });
  window.checkWideTables = check; // for a script that puts a new table in place
  check();
})();
