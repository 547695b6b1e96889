// perpdesk dashboard glue: live indicator, equity chart, confirm dialog, replace prompt.
(function () {
  "use strict";
  var live = document.getElementById("live");
  function setLive(on) {
    if (!live) return;
    live.classList.toggle("on", on);
    live.classList.toggle("reconnecting", !on);
    live.textContent = on ? "live" : "reconnecting…";
  }
  document.body.addEventListener("htmx:wsOpen", function () { setLive(true); });
  document.body.addEventListener("htmx:wsClose", function () { setLive(false); });
  document.body.addEventListener("htmx:wsError", function () { setLive(false); });

  // Pushed fragments. The ws extension (htmx-ext-ws 2.0.4) swaps each top-level element
  // of a message out of band, but not the content of <template>s; the server wraps each
  // table-row operation in one (a bare <tr> after a <div>, or a <tbody> after a <tr>, is
  // dropped by the HTML parser; see _in_template in app/web/live.py). This extension does
  // the swaps itself, templates included, in the message's order, and hands the ws
  // extension nothing left to do (it still fires htmx:wsAfterMessage).
  var internal = null;
  htmx.defineExtension("live-rows", {
    init: function (api) { internal = api; },
    transformResponse: function (text, xhr, elt) {
      if (xhr || !internal) return text;  // an ordinary htmx request: untouched
      var fragment = internal.makeFragment(text);
      var settle = internal.makeSettleInfo(elt);
      Array.prototype.slice.call(fragment.children).forEach(function (child) {
        var parts = child.tagName === "TEMPLATE"
          ? Array.prototype.slice.call(child.content.children) : [child];
        parts.forEach(function (part) {
          internal.oobSwap(internal.getAttributeValue(part, "hx-swap-oob") || "true", part, settle);
        });
      });
      internal.settleImmediately(settle.tasks);
      return "";
    }
  });

  // Equity curve (TradingView lightweight-charts), fed by the pushed #equity-data JSON.
  var chart = null, series = null;
  function drawEquity() {
    var holder = document.getElementById("equity-chart");
    var data = document.getElementById("equity-data");
    if (!holder || !data || !window.LightweightCharts) return;
    if (!chart) {
      chart = LightweightCharts.createChart(holder, {
        autoSize: true,
        // attributionLogo injects an inline <style> the CSP refuses; the page links instead.
        layout: { background: { color: "transparent" }, textColor: "#8b98a5", attributionLogo: false },
        grid: { vertLines: { color: "#1e2732" }, horzLines: { color: "#1e2732" } },
        timeScale: { timeVisible: true, secondsVisible: true }
      });
      series = chart.addSeries(LightweightCharts.LineSeries, { color: "#4c8dff", lineWidth: 2 });
    }
    try {
      var points = JSON.parse(data.textContent || "[]").map(function (p) {
        return { time: p.time, value: Number(p.value) };  // chart coordinates only
      });
      series.setData(points);
    } catch (e) { /* a partial frame; the next push redraws */ }
  }
  drawEquity();
  document.body.addEventListener("htmx:oobAfterSwap", function (ev) {
    if (ev.detail && ev.detail.target && ev.detail.target.id === "equity-data") drawEquity();
  });

  // Kill switches: every action asks for confirmation and a reason.
  var dialog = document.getElementById("confirm");
  document.body.addEventListener("click", function (ev) {
    var button = ev.target.closest("button[data-action]");
    if (!button || !dialog) return;
    var form = document.getElementById("confirm-form");
    var action = button.dataset.action;
    form.setAttribute("hx-post", "/ui/controls/" + action);
    htmx.process(form);
    document.getElementById("confirm-title").textContent = button.textContent.trim() + "?";
    document.getElementById("confirm-scope").textContent = "Scope: " + button.dataset.label;
    document.getElementById("confirm-client").value = button.dataset.client || "";
    document.getElementById("confirm-venue").value = button.dataset.venue || "";
    document.getElementById("confirm-reason").value = "";
    document.getElementById("confirm-go").textContent = "Confirm " + button.textContent.trim().toLowerCase();
    dialog.showModal();
  });
  if (dialog) {
    document.getElementById("confirm-cancel").addEventListener("click", function () { dialog.close(); });
    document.getElementById("confirm-form").addEventListener("htmx:afterRequest", function () { dialog.close(); });
  }

  // Replace: ask for the new price (and qty), then post.
  document.body.addEventListener("click", function (ev) {
    var button = ev.target.closest("button.replace");
    if (!button) return;
    var price = window.prompt("New price for order " + button.dataset.orderId, button.dataset.price);
    if (price === null) return;
    var qty = window.prompt("New quantity", button.dataset.qty);
    if (qty === null) return;
    htmx.ajax("POST", "/ui/orders/" + button.dataset.orderId + "/replace",
      { target: "#toasts", swap: "afterbegin", values: { price: price, qty: qty } });
  });

  // Toasts fade after a while.
  document.body.addEventListener("htmx:afterSwap", function (ev) {
    if (ev.detail.target && ev.detail.target.id === "toasts") {
      var toast = ev.detail.target.firstElementChild;
      if (toast) setTimeout(function () { toast.remove(); }, 8000);
    }
  });
  // Errors from actions (4xx) still carry a fragment worth showing.
  document.body.addEventListener("htmx:beforeSwap", function (ev) {
    if (ev.detail.xhr.status >= 400 && ev.detail.xhr.status < 500) {
      ev.detail.shouldSwap = true;
      ev.detail.isError = false;
    }
  });
})();
