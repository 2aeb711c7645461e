// The segment editor: a condition builder over the definition's JSON. Rows of field / operator / value in groups
// that combine with AND, OR or NOT (groups nest); the JSON textarea is what the form posts, kept in step with the
// builder both ways; the live count asks the server (debounced; the newest answer wins) and shows its error
// beside the row the error's path names. Without this script the form saves the JSON as typed.
(function () {
  var form = document.getElementById("segment-form");
  if (!form) { return; }
  var builder = document.getElementById("builder");
  var textarea = document.getElementById("definition");
  var jsonBox = document.getElementById("json-box");
  var countOut = document.getElementById("live-count");
  var countError = document.getElementById("count-error");
  var groupTemplate = document.getElementById("group-template");
  var conditionTemplate = document.getElementById("condition-template");
  var specs = {};
  JSON.parse(form.getAttribute("data-specs")).forEach(function (s) { specs[s.field] = s; });
  var FREE = "fields.";
  var timer = null;
  var asked = 0;

  function text(name) { return form.getAttribute("data-" + name) || ""; }
  function specOf(field) { return field.indexOf(FREE) === 0 ? specs[FREE] : specs[field]; }
  function opOf(spec, op) {
    for (var i = 0; spec && i < spec.ops.length; i++) { if (spec.ops[i].op === op) { return spec.ops[i]; } }
    return null;
  }
  function el(tag, attrs) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return node;
  }

  // --- building the rows -----------------------------------------------------------------------------

  function valueWidget(spec, op, value) {
    var box = document.createDocumentFragment();
    var kind = op ? op.value : "none";
    box.kind = kind;
    if (kind === "choice" || kind === "flag") {
      var select = el("select", {"class": "v", "aria-label": op.label});
      var options = kind === "flag" ? [[true, text("yes")], [false, text("no")]] : spec.choices;
      options.forEach(function (c) {
        var o = el("option", {value: String(c[0])});
        o.textContent = c[1];
        select.appendChild(o);
      });
      if (value !== undefined && value !== null) { select.value = String(value); }
      box.appendChild(select);
    } else if (kind === "choices") {
      var chosen = Array.isArray(value) ? value.map(String) : [];
      spec.choices.forEach(function (c) {
        var label = el("label", {"class": "choice"});
        var box2 = el("input", {type: "checkbox", "class": "v", value: String(c[0])});
        box2.checked = chosen.indexOf(String(c[0])) >= 0;
        label.appendChild(box2);
        label.appendChild(document.createTextNode(" " + c[1]));
        box.appendChild(label);
      });
    } else if (kind === "range") {
      var pair = Array.isArray(value) ? value : ["", ""];
      [text("from"), text("to")].forEach(function (label, i) {
        var input = el("input", {type: "text", "class": "v postcode", inputmode: "numeric", maxlength: "5",
                                 "aria-label": label, placeholder: label});
        input.value = pair[i] === undefined ? "" : String(pair[i]);
        box.appendChild(input);
      });
    } else if (kind !== "none") {
      var attrs = {"class": "v", "aria-label": op.label};
      if (kind === "date") { attrs.type = "date"; }
      else if (kind === "days") { attrs.type = "number"; attrs.min = "0"; attrs.step = "1"; }
      else { attrs.type = "text"; attrs.maxlength = kind === "texts" ? "4000" : "200"; }
      if (kind === "texts") { attrs.placeholder = text("comma"); }
      var input2 = el("input", attrs);
      if (value !== undefined && value !== null) {
        input2.value = Array.isArray(value) ? value.join(", ") : String(value);
      }
      box.appendChild(input2);
    }
    return box;
  }

  function setOps(row, field, op, value) {
    var spec = specOf(field);
    var ops = row.querySelector("select.op");
    ops.textContent = "";
    (spec ? spec.ops : []).forEach(function (o) {
      var option = el("option", {value: o.op});
      option.textContent = o.label;
      ops.appendChild(option);
    });
    if (op && opOf(spec, op)) { ops.value = op; }
    setValue(row, value);
  }

  function setValue(row, value) {
    var spec = specOf(row.querySelector("select.field").value);
    var op = opOf(spec, row.querySelector("select.op").value);
    var holder = row.querySelector(".value");
    holder.textContent = "";
    var widget = valueWidget(spec, op, value);
    row.setAttribute("data-kind", widget.kind);
    holder.appendChild(widget);
  }

  function newCondition(leaf) {
    var row = conditionTemplate.content.firstElementChild.cloneNode(true);
    var fieldSelect = row.querySelector("select.field");
    var key = row.querySelector("input.key");
    var field = leaf && typeof leaf.field === "string" ? leaf.field : "role";
    if (field.indexOf(FREE) === 0) {
      fieldSelect.value = FREE;
      key.value = field.slice(FREE.length);
    } else {
      if (!specs[field]) {  // a field this page does not know: kept as it is, so saving changes nothing
        var unknown = el("option", {value: field});
        unknown.textContent = field;
        fieldSelect.appendChild(unknown);
      }
      fieldSelect.value = field;
    }
    row.classList.toggle("free", fieldSelect.value === FREE);
    setOps(row, fieldSelect.value, leaf ? leaf.op : null, leaf ? leaf.value : undefined);
    return row;
  }

  function newGroup(mode, children) {
    var group = groupTemplate.content.firstElementChild.cloneNode(true);
    group.querySelector("select.mode").value = mode;
    var box = group.querySelector(".children");
    children.forEach(function (child) { box.appendChild(child); });
    return group;
  }

  // JSON → rows. {"not": {"any": […]}} is a "none of these" group; any other {"not": x} one with x alone.
  function fromJson(node) {
    if (node && typeof node === "object" && !Array.isArray(node)) {
      if (Array.isArray(node.all)) { return newGroup("all", node.all.map(fromJson)); }
      if (Array.isArray(node.any)) { return newGroup("any", node.any.map(fromJson)); }
      if ("not" in node) {
        var inner = node.not;
        var parts = inner && Array.isArray(inner.any) ? inner.any : [inner];
        return newGroup("none", parts.map(fromJson));
      }
    }
    return newCondition(node);
  }

  // --- rows → JSON (each row and group learns its path, to show the server's error beside it) -------------

  function leafJson(row, path) {
    row.setAttribute("data-path", path);
    var field = row.querySelector("select.field").value;
    if (field === FREE) { field = FREE + row.querySelector("input.key").value.trim(); }
    var out = {field: field, op: row.querySelector("select.op").value};
    var kind = row.getAttribute("data-kind");
    var inputs = Array.prototype.slice.call(row.querySelectorAll(".value .v"));
    var spec = specOf(field);
    var numeric = spec && spec.choices.length && typeof spec.choices[0][0] === "number";
    function typed(v) { return numeric && /^\d+$/.test(v) ? parseInt(v, 10) : v; }
    if (kind === "choice") { out.value = typed(inputs[0].value); }
    else if (kind === "flag") { out.value = inputs[0].value === "true"; }
    else if (kind === "choices") {
      out.value = inputs.filter(function (i) { return i.checked; }).map(function (i) { return typed(i.value); });
    } else if (kind === "range") { out.value = inputs.map(function (i) { return i.value.trim(); }); }
    else if (kind === "days") {
      var raw = inputs[0].value.trim();
      out.value = /^\d+$/.test(raw) ? parseInt(raw, 10) : raw;
    } else if (kind === "texts") {
      out.value = inputs[0].value.split(",").map(function (s) { return s.trim(); })
        .filter(function (s) { return s !== ""; });
    } else if (kind === "text" || kind === "date") { out.value = inputs[0].value; }
    return out;
  }

  function groupJson(group, path) {
    var mode = group.querySelector("select.mode").value;
    var key = mode === "all" ? "all" : "any";
    var listPath = mode === "none" ? path + ".not.any" : path + "." + key;
    group.setAttribute("data-path", mode === "none" ? path + ".not.any" : listPath);
    var parts = [];
    Array.prototype.forEach.call(group.querySelector(".children").children, function (child, i) {
      parts.push(nodeJson(child, listPath + "[" + i + "]"));
    });
    var list = {};
    list[key] = parts;
    return mode === "none" ? {not: list} : list;
  }

  function nodeJson(node, path) {
    return node.classList.contains("group") ? groupJson(node, path) : leafJson(node, path);
  }

  function toJson() { return nodeJson(builder.firstElementChild, "definition"); }

  // --- the live count -------------------------------------------------------------------------------

  function clearErrors() {
    Array.prototype.forEach.call(builder.querySelectorAll(".invalid"), function (n) {
      n.classList.remove("invalid");
    });
    Array.prototype.forEach.call(builder.querySelectorAll(".row-error"), function (n) { n.textContent = ""; });
    countError.textContent = "";
  }

  // The row or group whose path is the longest start of the error's path (definition.all[1].value → row 1).
  function markError(path, message) {
    var best = null;
    Array.prototype.forEach.call(builder.querySelectorAll("[data-path]"), function (n) {
      var own = n.getAttribute("data-path");
      var rest = path.slice(own.length);
      if (path.indexOf(own) === 0 && (rest === "" || rest[0] === "." || rest[0] === "[") &&
          (!best || own.length > best.getAttribute("data-path").length)) { best = n; }
    });
    if (!best) { return; }
    best.classList.add("invalid");
    var slot = best.querySelector(":scope > .row-error");
    if (slot) { slot.textContent = message; }
  }

  function count() {
    clearTimeout(timer);
    timer = setTimeout(function () {
      var mine = ++asked;
      countOut.classList.add("busy");
      var body = new FormData();
      body.append("csrf_token", form.querySelector("[name=csrf_token]").value);
      body.append("definition", textarea.value);
      fetch(form.getAttribute("data-count"), {method: "POST", body: body, credentials: "same-origin"})
        .then(function (r) { return r.json().then(function (data) { return {ok: r.ok, data: data}; }); })
        .then(function (answer) {
          if (mine !== asked) { return; }
          countOut.classList.remove("busy");
          clearErrors();
          if (!answer.ok) {
            var error = answer.data.error || {};
            countOut.textContent = "—";
            countError.textContent = error.text || error.message || "";
            if (error.field) { markError(error.field, error.message || ""); }
            return;
          }
          countOut.textContent = answer.data.text;
          countOut.setAttribute("data-count", String(answer.data.count));
        })
        .catch(function () { if (mine === asked) { countOut.classList.remove("busy"); } });
    }, 300);
  }

  function changed() {
    textarea.value = JSON.stringify(toJson(), null, 2);
    count();
  }

  // --- events (delegated: rows come and go) ------------------------------------------------------------

  builder.addEventListener("change", function (event) {
    var t = event.target;
    var row = t.closest(".condition");
    if (t.matches("select.field")) {
      row.classList.toggle("free", t.value === FREE);
      setOps(row, t.value, null, undefined);
      if (t.value === FREE) { row.querySelector("input.key").focus(); }
    } else if (t.matches("select.op")) {
      setValue(row, undefined);
    }
    changed();
  });
  builder.addEventListener("input", changed);
  builder.addEventListener("click", function (event) {
    var t = event.target;
    if (!(t instanceof HTMLButtonElement)) { return; }
    var group = t.closest(".group");
    if (t.classList.contains("add-condition")) {
      var row = newCondition(null);
      group.querySelector(".children").appendChild(row);
      row.querySelector("select.field").focus();
    } else if (t.classList.contains("add-group")) {
      group.querySelector(".children").appendChild(newGroup("any", [newCondition(null)]));
    } else if (t.classList.contains("remove-group")) {
      group.remove();
    } else if (t.classList.contains("remove")) {
      t.closest(".condition").remove();
    } else { return; }
    changed();
  });

  // Typing in the JSON rebuilds the builder whenever it is valid JSON (else the server says what is wrong).
  textarea.addEventListener("input", function () {
    try { render(JSON.parse(textarea.value)); } catch (e) { /* not JSON (yet) */ }
    count();
  });

  function render(definition) {
    var root = fromJson(definition);
    if (!root.classList.contains("group")) { root = newGroup("all", [root]); }
    root.classList.add("root");
    builder.textContent = "";
    builder.appendChild(root);
    toJson();  // the paths, for errors
  }

  var start;
  try { start = JSON.parse(textarea.value); } catch (e) { start = {all: []}; }
  render(start);
  builder.hidden = false;
  jsonBox.open = false;
  count();
}());
