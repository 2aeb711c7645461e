// Search as you type for "which contact?" fields: <input data-suggest="URL"> next to a hidden contact_id.
// Picking a suggestion sets contact_id; typing again clears it, so the server decides from the text as
// without this script (several matches are offered to pick from, never guessed).
(function () {
  document.querySelectorAll("input[data-suggest]").forEach(function (input) {
    var form = input.form;
    var chosen = form.querySelector("input[name=contact_id]");
    var list = document.createElement("ul");
    list.className = "suggestions";
    list.setAttribute("role", "listbox");
    list.setAttribute("aria-label", input.getAttribute("data-suggest-label") || "");
    (input.closest("label") || input).insertAdjacentElement("afterend", list);
    var timer = null;
    var asked = "";
    input.addEventListener("input", function () {
      if (chosen) { chosen.value = ""; }
      clearTimeout(timer);
      timer = setTimeout(ask, 150);
    });
    function ask() {
      var q = input.value.trim();
      if (q.length < 2) { list.replaceChildren(); return; }
      asked = q;
      fetch(input.getAttribute("data-suggest") + "?q=" + encodeURIComponent(q), {credentials: "same-origin"})
        .then(function (r) { return r.ok ? r.json() : {items: []}; })
        .then(function (data) { if (q === asked) { show(data.items || []); } });
    }
    function show(items) {
      list.replaceChildren();
      items.forEach(function (item) {
        var li = document.createElement("li");
        var button = document.createElement("button");
        button.type = "button";
        button.className = "link";
        button.setAttribute("role", "option");
        button.textContent = item.label;
        button.addEventListener("click", function () {
          input.value = item.label;
          if (chosen) { chosen.value = String(item.id); }
          list.replaceChildren();
        });
        li.appendChild(button);
        list.appendChild(li);
      });
    }
  });
})();
