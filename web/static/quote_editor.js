// The quote editor: add, remove and move line rows, add a product by searching as you type, and show the
// totals the server computes for the rows as they stand (POSTed as the form is; no money math here).
// Without this script the form still saves the rows as shown.
(function () {
  var form = document.getElementById("quote-form");
  if (!form) { return; }
  var body = document.getElementById("lines");
  var template = document.getElementById("line-template");
  var search = document.getElementById("product-search");
  var results = document.getElementById("product-results");
  var totalsBox = document.getElementById("totals-box");
  var status = document.getElementById("editor-status");
  var timer = null;
  var asked = 0;

  function rows() { return Array.prototype.slice.call(body.querySelectorAll("tr.line")); }

  function renumber() {
    rows().forEach(function (row, i) { row.querySelector("td.pos").textContent = String(i + 1); });
  }

  function field(row, name) { return row.querySelector("[name=" + name + "]"); }

  function newRow() {
    var row = template.content.firstElementChild.cloneNode(true);
    body.appendChild(row);
    renumber();
    return row;
  }

  function setVat(select, rate) {
    if (!rate) { return; }
    var found = Array.prototype.some.call(select.options, function (o) { return o.value === rate; });
    if (!found) {
      var option = document.createElement("option");
      option.value = rate;
      option.textContent = rate + " %";
      select.appendChild(option);
    }
    select.value = rate;
  }

  // The server computes; the newest answer wins (an older one arriving late is dropped).
  function refresh() {
    clearTimeout(timer);
    timer = setTimeout(function () {
      var mine = ++asked;
      fetch(form.getAttribute("data-totals"), {method: "POST", body: new FormData(form), credentials: "same-origin"})
        .then(function (r) { return r.json().then(function (data) { return {ok: r.ok, data: data}; }); })
        .then(function (answer) {
          if (mine !== asked) { return; }
          if (!answer.ok) {
            status.textContent = (answer.data.error && answer.data.error.message) || "";
            return;
          }
          status.textContent = "";
          totalsBox.innerHTML = answer.data.html;  // rendered and escaped by the server
          rows().forEach(function (row, i) {
            row.querySelector("td.net").textContent = answer.data.line_nets[i] || "";
          });
        })
        .catch(function () { if (mine === asked) { status.textContent = "…"; } });
    }, 200);
  }

  body.addEventListener("click", function (event) {
    var button = event.target.closest("button");
    if (!button) { return; }
    var row = button.closest("tr.line");
    if (button.classList.contains("up") && row.previousElementSibling) {
      body.insertBefore(row, row.previousElementSibling);
    } else if (button.classList.contains("down") && row.nextElementSibling) {
      body.insertBefore(row.nextElementSibling, row);
    } else if (button.classList.contains("remove")) {
      row.remove();
    } else {
      return;
    }
    renumber();
    refresh();
  });
  form.addEventListener("input", function (event) {
    if (event.target !== search) { refresh(); }
  });
  form.addEventListener("change", function (event) {
    if (event.target.tagName === "SELECT") { refresh(); }
  });
  document.getElementById("add-line").addEventListener("click", function () {
    field(newRow(), "line_text").focus();
  });

  // Product search: Enter in the search field must not submit the quote.
  var searchTimer = null;
  var searched = "";
  search.addEventListener("keydown", function (event) {
    if (event.key === "Enter") {
      event.preventDefault();
      var first = results.querySelector("button");
      if (first) { first.click(); }
    }
  });
  search.addEventListener("input", function () {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(ask, 150);
  });

  function ask() {
    var q = search.value.trim();
    if (!q) { results.replaceChildren(); return; }
    searched = q;
    fetch(form.getAttribute("data-products") + "?q=" + encodeURIComponent(q), {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : {items: []}; })
      .then(function (data) { if (q === searched) { show(data.items || []); } });
  }

  function show(items) {
    results.replaceChildren();
    items.forEach(function (product) {
      var li = document.createElement("li");
      var button = document.createElement("button");
      button.type = "button";
      button.setAttribute("role", "option");
      button.textContent = product.number + " · " + product.name + " · " + product.price_label;
      button.addEventListener("click", function () { add(product); });
      li.appendChild(button);
      results.appendChild(li);
    });
  }

  function add(product) {
    var row = newRow();
    field(row, "line_product_id").value = String(product.id);
    field(row, "line_text").value = product.name;
    field(row, "line_description").value = product.description || "";
    field(row, "line_unit").value = product.unit;
    field(row, "line_unit_price").value = product.net_price;
    setVat(field(row, "line_vat"), product.vat_rate);
    search.value = "";
    results.replaceChildren();
    refresh();
    field(row, "line_quantity").focus();
  }
})();
