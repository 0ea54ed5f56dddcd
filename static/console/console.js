/* Cleave console: draw the server's plotly figures, and keep live pages fresh without reloading them.

   A figure is a <div id> followed by <script type="application/json" data-figure-for="id">.
   An element with data-live-url is refreshed every data-live-every seconds: the endpoint answers
   {"figures": {id: figure}, "html": {id: markup}, "done": bool}; figures are redrawn with Plotly.react,
   fragments swapped in place. With data-live-until-done, refreshing stops once the answer says done. */
(function () {
  "use strict";

  var CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"] };

  function plot(element, figure) {
    if (!window.Plotly || !element) { return; }
    window.Plotly.react(element, figure.data || [], figure.layout || {}, CONFIG);
  }

  function drawFigures(root) {
    root.querySelectorAll("script[data-figure-for]").forEach(function (script) {
      try {
        plot(document.getElementById(script.dataset.figureFor), JSON.parse(script.textContent));
      } catch (error) {
        console.error("figure " + script.dataset.figureFor + ":", error);
      }
    });
  }

  function stamp(container, ok) {
    var label = container.querySelector("[data-live-stamp]");
    if (!label) { return; }
    label.textContent = ok ? "Updated " + new Date().toLocaleTimeString() : "Update failed " + new Date().toLocaleTimeString();
    label.classList.toggle("stale", !ok);
    label.dataset.updates = String(Number(label.dataset.updates || 0) + 1);
  }

  function keepFresh(container) {
    var every = Math.max(1, Number(container.dataset.liveEvery || 5)) * 1000;
    var untilDone = container.hasAttribute("data-live-until-done");

    function apply(body) {
      Object.keys(body.figures || {}).forEach(function (id) { plot(document.getElementById(id), body.figures[id]); });
      Object.keys(body.html || {}).forEach(function (id) {
        var target = document.getElementById(id);
        if (target) { target.innerHTML = body.html[id]; drawFigures(target); }
      });
    }

    function tick() {
      if (document.hidden) { return schedule(); }
      fetch(container.dataset.liveUrl, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (response) {
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.json();
        })
        .then(function (body) {
          apply(body);
          stamp(container, true);
          if (!(untilDone && body.done)) { schedule(); }
        })
        .catch(function () { stamp(container, false); schedule(); });
    }

    function schedule() { window.setTimeout(tick, every); }
    schedule();
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawFigures(document);
    document.querySelectorAll("[data-live-url]").forEach(keepFresh);
    // Filters apply as soon as they change (a button stands in when scripts are off).
    document.querySelectorAll("form[data-autosubmit] select").forEach(function (select) {
      select.addEventListener("change", function () { select.form.submit(); });
    });
  });
})();
