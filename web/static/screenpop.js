// Incoming calls pop up while a staff page is open (Server-Sent Events from /events/calls).
// The stream is open only while this tab is visible: each open stream holds a server thread.
(function () {
  if (!window.EventSource) { return; }
  var box = document.getElementById("screenpop");
  if (!box) { return; }
  var source = null;
  var retry = null;

  function show(message) {
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
  }

  function close() {
    clearTimeout(retry);
    if (source) { source.close(); source = null; }
  }

  function open() {
    if (source || document.hidden) { return; }
    source = new EventSource(box.getAttribute("data-stream"));
    source.addEventListener("call", show);
    source.addEventListener("replaced", close);  // a newer tab of ours listens now
    source.addEventListener("error", function () {
      // Refused (the server is full) or gone for good: try again in a while; short drops reconnect by themselves.
      if (source && source.readyState === EventSource.CLOSED) {
        source = null;
        retry = setTimeout(open, 30000);
      }
    });
  }

  document.addEventListener("visibilitychange", function () { if (document.hidden) { close(); } else { open(); } });
  window.addEventListener("pagehide", close);
  open();
})();
