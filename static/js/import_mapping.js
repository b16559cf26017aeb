// The mapping page: a column's new-field name and type are shown only when "A new field" is
// chosen for it. Without script they stay visible and are used only for new fields.
(function () {
  "use strict";
  function sync(column) {
    var select = column.querySelector("select");
    var extra = column.querySelector("[data-new-field]");
    if (select && extra) { extra.hidden = select.value !== "new"; }
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-mapping-column]").forEach(function (column) {
      sync(column);
      column.querySelector("select").addEventListener("change", function () { sync(column); });
    });
  });
})();
