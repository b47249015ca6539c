// Preselect the browser's time zone on the sign-up form. Without JavaScript the
// server's default stays selected, and the person can still pick one.
(function () {
  var select = document.getElementById("timezone");
  if (!select || select.getAttribute("data-chosen") === "yes") return;
  var zone;
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }
  for (var i = 0; i < select.options.length; i++) {
    if (select.options[i].value === zone) { select.value = zone; return; }
  }
})();
