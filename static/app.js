// Behaviour shared by the pages, kept out of the HTML so the Content-Security-Policy can forbid
// inline script: "select all" checkboxes and forms that ask for confirmation first.
(function () {
  "use strict";
  document.querySelectorAll("input[data-select-all]").forEach(function (box) {
    box.addEventListener("click", function () {
      document.querySelectorAll("input[name='" + box.getAttribute("data-select-all") + "']")
        .forEach(function (other) { other.checked = box.checked; });
    });
  });
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
    });
  });
})();
