// Incoming calls pop up while a staff page is open (Server-Sent Events from /events/calls).
(function () {
  if (!window.EventSource) { return; }
  var box = document.getElementById("screenpop");
  if (!box) { return; }
  var source = new EventSource(box.getAttribute("data-stream"));
  source.addEventListener("call", function (message) {
    var call = JSON.parse(message.data);
    var item = document.createElement("div");
    item.className = "screenpop-call";
    var label = document.createElement(call.url ? "a" : "span");
    if (call.url) { label.href = call.url; }
    label.textContent = (call.name ? call.name + " · " : "") + call.number;
    item.appendChild(document.createTextNode(box.getAttribute("data-label") + " "));
    item.appendChild(label);
    box.prepend(item);
    setTimeout(function () { item.remove(); }, 120000);
  });
})();
