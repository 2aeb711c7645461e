// The campaign preview's recipient picker: choosing a recipient (from the list or found by name) swaps in the
// rendered mail for that person without reloading the page. Without this script the picker is a GET form.
(function () {
  var form = document.querySelector("form.preview-pick");
  if (!form) { return; }
  var select = form.querySelector("#preview-recipient");
  var find = form.querySelector("#preview-find");
  var found = document.getElementById("preview-found");
  var asked = "";
  var timer = null;
  var shown = 0;

  function show(contactId) {
    var ticket = ++shown;
    var url = form.getAttribute("data-preview") + (contactId ? "?contact_id=" + encodeURIComponent(contactId) : "");
    fetch(url, {credentials: "same-origin"})
      .then(function (r) { return r.text(); })
      .then(function (html) {
        if (ticket !== shown) { return; }  // an answer to an older choice
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("preview-box");
        var box = document.getElementById("preview-box");
        if (fresh && box) { box.replaceWith(document.importNode(fresh, true)); }
        var here = new URL(window.location.href);
        if (contactId) { here.searchParams.set("contact_id", contactId); } else { here.searchParams.delete("contact_id"); }
        window.history.replaceState(null, "", here.toString());
      });
  }

  function choose(id, name) {
    var option = Array.prototype.find.call(select.options, function (o) { return o.value === String(id); });
    if (!option) {
      option = document.createElement("option");
      option.value = String(id);
      option.textContent = name;
      select.appendChild(option);
    }
    select.value = String(id);
    found.replaceChildren();
    show(String(id));
  }

  select.addEventListener("change", function () { show(select.value); });
  form.addEventListener("submit", function (event) { event.preventDefault(); show(select.value); });
  document.getElementById("preview-show").hidden = true;  // choosing shows at once

  find.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(ask, 150);
  });
  find.addEventListener("keydown", function (event) {
    if (event.key === "Enter") { event.preventDefault(); ask(); }
  });

  function ask() {
    var q = find.value.trim();
    if (q.length < 2) { found.replaceChildren(); return; }
    asked = q;
    fetch(form.getAttribute("data-find") + "?q=" + encodeURIComponent(q), {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : {items: []}; })
      .then(function (data) { if (q === asked) { list(data.items || []); } });
  }

  function list(items) {
    found.replaceChildren();
    if (!items.length) {
      var none = document.createElement("li");
      none.className = "muted small";
      none.textContent = find.getAttribute("data-none") || "—";
      found.appendChild(none);
      return;
    }
    items.forEach(function (item) {
      var li = document.createElement("li");
      var button = document.createElement("button");
      button.type = "button";
      button.className = "link";
      button.textContent = item.name;
      button.addEventListener("click", function () { find.value = ""; choose(item.id, item.name); });
      li.appendChild(button);
      found.appendChild(li);
    });
  }
})();
